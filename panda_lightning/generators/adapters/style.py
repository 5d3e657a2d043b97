"""A compact style-modulated generator (StyleGAN2-like, Karras et al., 2020), written here.

It exists as an example and for the tests: it runs in milliseconds on a CPU, and its blocks
return ``(features, rgb)`` tuples, as StyleGAN2's skip architecture does, so that choosing an
element of a block's output (``"synthesis.b16[0]"``) is exercised. No noise inputs, no style
mixing, no anti-aliased resampling: the parts that matter for PandA are the per-layer styles and
the modulated, demodulated 3x3 convolutions.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from panda_lightning.functional.validation import check_int
from panda_lightning.generators.latents import GaussianLatents
from panda_lightning.generators.formats.weights import load_weights


class StyledConv(nn.Module):
    """A 3x3 convolution modulated by a style from ``w``, demodulated, then a leaky ReLU; with
    ``upsample``, the input is first upsampled 2x (bilinear)."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, upsample: bool = False):
        super().__init__()
        self.upsample = upsample
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 3, 3))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.affine = nn.Linear(w_dim, in_channels)
        nn.init.ones_(self.affine.bias)  # styles start near 1: the plain convolution

    def forward(self, x: Tensor, w: Tensor) -> Tensor:
        if self.upsample:
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        batch, in_channels, height, width = x.shape
        style = self.affine(w)  # (N, C_in)
        weight = self.weight[None] * style[:, None, :, None, None]  # (N, C_out, C_in, 3, 3)
        weight = weight * torch.rsqrt(weight.square().sum(dim=(2, 3, 4), keepdim=True) + 1e-8)
        # One grouped convolution applies each sample's own weights.
        out = F.conv2d(x.reshape(1, -1, height, width), weight.flatten(0, 1), padding=1, groups=batch)
        out = out.view(batch, -1, height, width) + self.bias[None, :, None, None]
        return F.leaky_relu(out, 0.2)


class ToRGB(nn.Module):
    """A 1x1 convolution to RGB, modulated by a style, not demodulated."""

    def __init__(self, in_channels: int, w_dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(3, in_channels) / math.sqrt(in_channels))
        self.bias = nn.Parameter(torch.zeros(3))
        self.affine = nn.Linear(w_dim, in_channels)
        nn.init.ones_(self.affine.bias)

    def forward(self, x: Tensor, w: Tensor) -> Tensor:
        style = self.affine(w)
        return torch.einsum("oc,nc,nchw->nohw", self.weight, style, x) + self.bias[None, :, None, None]


class SynthesisBlock(nn.Module):
    """Features at twice the input's resolution, and the running RGB image: ``(features, rgb)``.

    The first block (``upsample=False``) starts from a learnt constant instead of an input.
    """

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, first: bool = False):
        super().__init__()
        self.const = nn.Parameter(torch.randn(1, out_channels, 4, 4)) if first else None
        self.conv0 = None if first else StyledConv(in_channels, out_channels, w_dim, upsample=True)
        self.conv1 = StyledConv(out_channels, out_channels, w_dim)
        self.to_rgb = ToRGB(out_channels, w_dim)

    def forward(self, x: Tensor | None, rgb: Tensor | None, w: Tensor) -> tuple[Tensor, Tensor]:
        x = self.const.expand(w.shape[0], -1, -1, -1) if self.conv0 is None else self.conv0(x, w)
        x = self.conv1(x, w)
        new_rgb = self.to_rgb(x, w)
        if rgb is not None:  # the skip architecture: each block adds detail to the image so far
            new_rgb = new_rgb + F.interpolate(rgb, scale_factor=2, mode="bilinear", align_corners=False)
        return x, new_rgb


class StyleGenerator(nn.Module):
    """Mapping network -> ``w`` -> styled synthesis blocks ``b4, b8, ...`` up to ``resolution``.

    Layers: ``synthesis.b{R}`` returns ``(features, rgb)``: name its features
    ``"synthesis.b{R}[0]"`` (``channels x R x R``); ``synthesis.b{R}.conv1`` is the same
    tensor, ``synthesis.b{R}.conv0`` the block's first, upsampling convolution.
    Images are ``tanh`` of the last RGB, in ``[-1, 1]``.

    No ``forward_from``: the layers after any block also take the styles (from the latents)
    and the RGB image so far, so an edit reruns the whole generator with a hook.

    Args:
        latent_dim: size of ``z`` and ``w``.
        channels: feature channels of every block.
        resolution: image side, a power of 2 from 4 on.
        mapping_layers: fully connected layers of the mapping network.
        checkpoint: a state dict of this architecture (``torch.save(generator.state_dict(),
            path)``); ``None`` keeps a random initialisation (seeded by ``seed``).
        seed: seed of the random initialisation, so that every run builds the same generator.
    """

    def __init__(
        self,
        latent_dim: int = 64,
        channels: int = 64,
        resolution: int = 32,
        mapping_layers: int = 4,
        checkpoint: str | None = None,
        seed: int = 0,
    ):
        super().__init__()
        if resolution < 4 or resolution & (resolution - 1):
            raise ValueError(f"resolution={resolution} must be a power of 2 from 4 on (4, 8, 16, 32, ...).")
        for name, value in [("latent_dim", latent_dim), ("channels", channels), ("mapping_layers", mapping_layers)]:
            check_int(name, value, low=1)
        self._latents = GaussianLatents([latent_dim])
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            mapping = []
            for _ in range(mapping_layers):
                mapping += [nn.Linear(latent_dim, latent_dim), nn.LeakyReLU(0.2)]
            self.mapping = nn.Sequential(*mapping)
            sides = [4 * 2**i for i in range(int(math.log2(resolution)) - 1)]
            self.synthesis = nn.ModuleDict(
                {f"b{side}": SynthesisBlock(channels, channels, latent_dim, first=side == 4) for side in sides}
            )
        if checkpoint is not None:
            load_weights(self, checkpoint, "checkpoint")

    def sample_latents(self, num_samples: int, generator: torch.Generator) -> Tensor:
        return self._latents(num_samples, generator)

    def forward(self, latents: Tensor) -> Tensor:
        w = self.mapping(latents * torch.rsqrt(latents.square().mean(dim=1, keepdim=True) + 1e-8))
        x = rgb = None
        for block in self.synthesis.values():
            x, rgb = block(x, rgb, w)
        return torch.tanh(rgb)
