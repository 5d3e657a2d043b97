"""FIR resampling of feature maps, as StyleGAN2 uses it (Karras et al., 2020, Sec. 2 and App. B).

``upfirdn2d`` upsamples by inserting zeros, pads (or crops, with negative padding), convolves
every channel with a 2-D FIR filter and keeps every ``down``-th pixel. Written here in plain
PyTorch, so it runs on any device with no compiled plug-in.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor


def fir_filter(taps: Sequence[float]) -> Tensor:
    """The separable filter ``taps x taps``, normalised to sum 1: ``(K, K)``, float32."""
    taps = torch.as_tensor(taps, dtype=torch.float32)
    if taps.dim() != 1 or taps.numel() == 0:
        raise ValueError(f"taps={taps.tolist()} must be a non-empty list of numbers, such as [1, 3, 3, 1].")
    kernel = torch.outer(taps, taps)
    return kernel / kernel.sum()


def upfirdn2d(
    x: Tensor, kernel: Tensor, up: int = 1, down: int = 1, padding: tuple[int, int, int, int] = (0, 0, 0, 0),
    gain: float = 1.0,
) -> Tensor:
    """Upsample, FIR-filter and downsample ``x: (N, C, H, W)`` with ``kernel: (K, K)``.

    ``padding = (left, right, top, bottom)`` applies after the zero insertion (negative crops);
    the filtering is a true convolution with ``kernel * gain``.
    """
    batch, channels, height, width = x.shape
    if up > 1:  # every pixel followed by up - 1 zeros, in both directions
        x = x.reshape(batch, channels, height, 1, width, 1)
        x = F.pad(x, [0, up - 1, 0, 0, 0, up - 1])
        x = x.reshape(batch, channels, height * up, width * up)
    left, right, top, bottom = padding
    x = F.pad(x, [max(left, 0), max(right, 0), max(top, 0), max(bottom, 0)])
    x = x[:, :, max(-top, 0) : x.shape[2] - max(-bottom, 0), max(-left, 0) : x.shape[3] - max(-right, 0)]
    weight = (kernel * gain).to(x.dtype).flip([0, 1])  # conv2d correlates; flipped, it convolves
    x = F.conv2d(x, weight[None, None].repeat(channels, 1, 1, 1), groups=channels)
    return x[:, :, ::down, ::down]


def upsample2d(x: Tensor, kernel: Tensor, factor: int = 2) -> Tensor:
    """``x`` at ``factor`` times its resolution, low-pass filtered by ``kernel`` (its DC gain kept)."""
    size = kernel.shape[-1]
    before, after = (size + factor - 1) // 2, (size - factor) // 2
    return upfirdn2d(x, kernel, up=factor, padding=(before, after, before, after), gain=factor**2)
