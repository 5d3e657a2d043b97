"""Running an ``nn.Sequential`` generator (``main.0``, ``main.1``, ...) from a layer's output on."""

from __future__ import annotations

from torch import Tensor, nn


def forward_from_sequential(main: nn.Sequential, layer: str, activations: Tensor, name: str = "main") -> Tensor:
    """The images from the output of ``layer`` (``"main.8"``) on: the layers of ``main`` after it."""
    prefix, _, index = layer.partition(".")
    if prefix != name or not index.isdigit() or not 0 <= int(index) < len(main):
        raise ValueError(f"layer={layer!r} must be one of {name}.0 to {name}.{len(main) - 1}.")
    return main[int(index) + 1 :](activations)
