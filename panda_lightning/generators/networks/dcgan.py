"""DCGANs as an ``nn.Sequential`` (``main.0``, ``main.1``, ...): their blocks, and running one
from a layer's output on."""

from __future__ import annotations

import torch
from torch import Tensor, nn


def dcgan_block(in_channels: int, out_channels: int, first: bool = False) -> list[nn.Module]:
    """A DCGAN generator block: a bias-free transposed convolution (4 x 4; from 1 x 1 to 4 x 4
    when ``first``, else twice the size), batch norm, ReLU."""
    stride, padding = (1, 0) if first else (2, 1)
    return [
        nn.ConvTranspose2d(in_channels, out_channels, 4, stride, padding, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(True),
    ]


def forward_from_sequential(main: nn.Sequential, layer: str, activations: Tensor, name: str = "main") -> Tensor:
    """The images from the output of ``layer`` (``"main.8"``) on: the layers of ``main`` after it."""
    prefix, _, index = layer.partition(".")
    if prefix != name or not index.isdigit() or not 0 <= int(index) < len(main):
        raise ValueError(f"layer={layer!r} must be one of {name}.0 to {name}.{len(main) - 1}.")
    return main[int(index) + 1 :](activations)


class SequentialDCGAN(nn.Module):
    """A DCGAN whose layers are ``main`` (``main.0``, ``main.1``, ...) and whose latents are
    ``z ~ N(0, I)`` of ``latent_dim`` numbers as ``(latent_dim, 1, 1)``; it runs from any
    layer's output on (:meth:`forward_from`). Subclasses build ``main`` and load its weights."""

    latent_dim = 100
    main: nn.Sequential

    def sample_latents(self, num_samples: int, generator: torch.Generator) -> Tensor:
        return torch.randn(num_samples, self.latent_dim, 1, 1, generator=generator)

    def forward(self, latents: Tensor) -> Tensor:
        return self.main(latents)

    def forward_from(self, layer: str, activations: Tensor) -> Tensor:
        """The images from the output of ``layer`` on, without the layers before it."""
        return forward_from_sequential(self.main, layer, activations)
