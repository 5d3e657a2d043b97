"""Whether a fit's activations fit in the memory of its device, said before the fit starts."""

from __future__ import annotations

from pathlib import Path

import torch

SHARE = 0.8  # of the free memory that the activations may take: the generator needs the rest


def readable_size(size: float) -> str:
    """``size`` bytes as ``3.81 GiB``, ``256 MiB`` or ``96 KiB``."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20)):
        if size >= scale:
            return f"{size / scale:.2f} {unit}" if unit == "GiB" else f"{size / scale:.0f} {unit}"
    return f"{size / 2**10:.0f} KiB"


def free_bytes(device: torch.device) -> int | None:
    """The free memory of ``device``: CUDA's own count, or the machine's available memory
    (Linux's ``MemAvailable``) for the CPU; ``None`` where it cannot be read."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def check_fits(plan: dict[str, tuple[int, str]], device: torch.device, processes_sharing: int = 1) -> None:
    """Raise a ``MemoryError`` naming each part of ``plan`` (``{what: (bytes, how to lower it)}``,
    the bytes one process holds) when, for the ``processes_sharing`` processes that share
    ``device``'s memory, they would take more than :data:`SHARE` of its free memory."""
    free = free_bytes(device)
    if free is None:
        return
    needed = sum(size for size, _ in plan.values()) * processes_sharing
    if needed <= SHARE * free:
        return
    parts = "; ".join(f"{what} {readable_size(size)} ({lower})" for what, (size, lower) in plan.items() if size)
    sharing = f", for {processes_sharing} processes" if processes_sharing > 1 else ""
    raise MemoryError(
        f"the fit's activations would take {readable_size(needed)} of {device}{sharing}, more than "
        f"{SHARE:.0%} of its {readable_size(free)} free: {parts}."
    )
