"""Whether a layer's activations hold a checkerboard, before any fit: how alike the channel
fibres of neighbouring positions are, by the parity of their offset.

    python -m benchmarks.checkerboard [--samples 256] [--seed 0]

For each generator and layer, the mean cosine similarity of the channel fibres ``Z_i[:, s]``
and ``Z_i[:, s']`` (each channel centred by its mean over samples and positions) over samples
and positions ``s``, for the neighbours ``s'`` one position across (0, 1) and down (1, 0), of
the other parity, and one diagonally (1, 1) and two across (0, 2), of the same parity and
further apart. Smooth features make the nearer neighbours the more alike; a transposed
convolution's checkerboard (a stride-2 kernel whose taps differ by the output's parity) makes
those of the same parity more alike than the nearer ones of the other parity. Parts fitted to
such a layer interleave.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from panda_lightning.datamodules import GeneratorActivations
from panda_lightning.generators import FaceDCGAN, PhotoFaceDCGAN

OFFSETS = ((0, 1), (1, 0), (1, 1), (0, 2))  # the other parity, nearest; then the same parity
CASES = [
    ("FaceDCGAN", FaceDCGAN, ["main.5", "main.8", "main.11"]),
    ("PhotoFaceDCGAN", PhotoFaceDCGAN, ["main.5", "main.8", "main.11"]),
]


def neighbour_similarity(activations: torch.Tensor, dy: int, dx: int) -> float:
    """Mean cosine similarity of the channel fibres at ``(y, x)`` and ``(y + dy, x + dx)``,
    ``activations: (N, C, H, W)``."""
    height, width = activations.shape[-2:]
    here = activations[..., : height - dy, : width - dx]
    there = activations[..., dy:, dx:]
    return F.cosine_similarity(here, there, dim=1, eps=1e-8).mean().item()


def similarities(generator: torch.nn.Module, layer: str, samples: int, seed: int = 0) -> dict[tuple[int, int], float]:
    """The mean cosine similarity of the centred channel fibres at each of :data:`OFFSETS`."""
    data = GeneratorActivations(generator, layer=layer)
    with torch.no_grad():
        activations = data.generator.activations(data.generator.preview_latents(samples, seed)).float()
    centred = activations - activations.mean(dim=(0, 2, 3), keepdim=True)
    return {offset: neighbour_similarity(centred, *offset) for offset in OFFSETS}


def parity_contrast(similarity: dict[tuple[int, int], float]) -> float:
    """How much more alike the fibres of the same parity are than the nearest ones of the
    other: positive where the layer holds a checkerboard."""
    return max(similarity[(1, 1)], similarity[(0, 2)]) - max(similarity[(0, 1)], similarity[(1, 0)])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.checkerboard", description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(f"cosine similarity of neighbouring positions' channel fibres, {args.samples} samples")
    print(f"{'generator':16} {'layer':8} " + " ".join(f"{str(offset):>8}" for offset in OFFSETS) + "  same parity - other")
    for name, make, layers in CASES:
        generator = make().eval()
        for layer in layers:
            similarity = similarities(generator, layer, args.samples, args.seed)
            print(f"{name:16} {layer:8} " + " ".join(f"{similarity[o]:8.3f}" for o in OFFSETS) + f"  {parity_contrast(similarity):+.3f}")


if __name__ == "__main__":
    main()
