"""ProGAN's layers (Karras et al., ICLR 2018), as pytorch_GAN_zoo's PGAN computes them: equalised
layers, whose ``N(0, 1)`` weights and output (bias included) are scaled by He's constant
``sqrt(2 / fan_in)`` at run time, leaky ReLUs and pixel norms."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def pixel_norm(x: Tensor, epsilon: float = 1e-8) -> Tensor:
    """Each position's vector of features divided by its root mean square (over dim 1)."""
    return x * (x.square().mean(dim=1, keepdim=True) + epsilon).rsqrt()


class EqualizedConv2d(nn.Module):
    """A convolution whose ``N(0, 1)`` weights and output are scaled by ``sqrt(2 / fan_in)``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, equalized: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.gain = math.sqrt(2 / (in_channels * kernel_size**2)) if equalized else 1.0

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight, self.bias, padding=self.weight.shape[-1] // 2) * self.gain


class ConvLayer(nn.Module):
    """Up-sampled (nearest, x2) when ``up``, a 3 x 3 equalised convolution, a leaky ReLU, a pixel norm."""

    def __init__(self, in_channels: int, out_channels: int, up: bool, slope: float, normalize: bool, equalized: bool):
        super().__init__()
        self.up, self.slope, self.normalize = up, slope, normalize
        self.conv = EqualizedConv2d(in_channels, out_channels, 3, equalized)

    def forward(self, x: Tensor) -> Tensor:
        if self.up:
            x = F.interpolate(x, scale_factor=2, mode="nearest")
        x = F.leaky_relu(self.conv(x), self.slope)
        return pixel_norm(x) if self.normalize else x


class InputLayer(nn.Module):
    """The (normalised) latent through an equalised dense layer, a leaky ReLU and a pixel norm,
    as ``C_0 x 4 x 4`` features."""

    def __init__(self, latent_dim: int, channels: int, slope: float, normalize: bool, equalized: bool):
        super().__init__()
        self.slope, self.normalize, self.channels = slope, normalize, channels
        self.weight = nn.Parameter(torch.randn(16 * channels, latent_dim))
        self.bias = nn.Parameter(torch.zeros(16 * channels))
        self.gain = math.sqrt(2 / latent_dim) if equalized else 1.0

    def forward(self, latents: Tensor) -> Tensor:
        z = pixel_norm(latents) if self.normalize else latents
        x = F.leaky_relu(F.linear(z, self.weight, self.bias) * self.gain, self.slope).view(-1, self.channels, 4, 4)
        return pixel_norm(x)  # (pytorch_GAN_zoo normalises here whatever its setting)


class Block(nn.ModuleDict):
    """One scale's convolutions, run in order."""

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.values():
            x = layer(x)
        return x
