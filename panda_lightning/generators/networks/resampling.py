"""FIR resampling of feature maps, as StyleGAN2 and StyleGAN3 use it (Karras et al., 2020, App. B;
2021, Sec. 3 and App. C), and the design of StyleGAN3's low-pass filters.

``upfirdn2d`` upsamples by inserting zeros, pads (or crops, with negative padding), convolves
every channel with a FIR filter (2-D, or 1-D applied along each axis) and keeps every
``down``-th pixel. Written here in plain PyTorch, so it runs on any device with no compiled
plug-in.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
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


def kaiser_lowpass(taps: int, cutoff: float, width: float, rate: float, radial: bool = False) -> Tensor | None:
    """A windowed-sinc low-pass filter of ``taps`` taps for signals sampled at ``rate``: pass band
    up to ``cutoff``, transition band ``width`` wide, Kaiser window of the attenuation that
    ``taps`` and ``width`` allow (Kaiser's formulas). 1-D ``(taps,)``, or with ``radial`` a
    radially symmetric 2-D ``(taps, taps)`` (a jinc). ``None`` for one tap: no filtering."""
    if taps == 1:
        return None
    attenuation = 2.285 * (taps - 1) * np.pi * (width / (rate / 2)) + 7.95
    beta = (0.1102 * (attenuation - 8.7) if attenuation > 50
            else 0.5842 * (attenuation - 21) ** 0.4 + 0.07886 * (attenuation - 21) if attenuation > 21 else 0.0)
    window = np.kaiser(taps, beta)
    positions = np.arange(taps) - (taps - 1) / 2
    if not radial:
        band = 2 * cutoff / rate  # the cutoff as a fraction of the Nyquist frequency
        kernel = band * np.sinc(band * positions) * window
        return torch.as_tensor(kernel / kernel.sum(), dtype=torch.float32)
    x = positions / rate
    radius = torch.as_tensor(np.hypot(*np.meshgrid(x, x)))
    argument = 2 * cutoff * np.pi * radius
    # jinc: J1(2 pi f_c r) / (pi r), with its limit f_c at r = 0
    jinc = torch.where(radius > 0, torch.special.bessel_j1(argument) / (np.pi * radius.clamp_min(1e-30)),
                       torch.full_like(radius, cutoff))
    kernel = jinc.numpy() * np.outer(window, window)
    return torch.as_tensor(kernel / kernel.sum(), dtype=torch.float32)


def upfirdn2d(
    x: Tensor, kernel: Tensor | None, up: int = 1, down: int = 1,
    padding: Sequence[int] = (0, 0, 0, 0), gain: float = 1.0,
) -> Tensor:
    """Upsample, FIR-filter and downsample ``x: (N, C, H, W)`` with ``kernel``: ``(K, K)``, or
    ``(K,)`` applied along the rows then the columns, or ``None`` (no filtering).

    ``padding = (left, right, top, bottom)`` applies after the zero insertion (negative crops);
    the filtering is a true convolution with ``kernel * gain`` (a 1-D kernel takes ``sqrt(gain)``
    on each axis).
    """
    batch, channels, height, width = x.shape
    if up > 1:  # every pixel followed by up - 1 zeros, in both directions
        x = x.reshape(batch, channels, height, 1, width, 1)
        x = F.pad(x, [0, up - 1, 0, 0, 0, up - 1])
        x = x.reshape(batch, channels, height * up, width * up)
    left, right, top, bottom = padding
    x = F.pad(x, [max(left, 0), max(right, 0), max(top, 0), max(bottom, 0)])
    x = x[:, :, max(-top, 0) : x.shape[2] - max(-bottom, 0), max(-left, 0) : x.shape[3] - max(-right, 0)]
    if kernel is None:
        kernel = torch.ones(1, 1, device=x.device)
    # conv2d correlates; the kernel flipped, it convolves
    weight = (kernel * gain ** (kernel.dim() / 2)).to(x.dtype).flip(list(range(kernel.dim())))
    weight = weight[None, None].repeat([channels, 1] + [1] * kernel.dim())
    # Keeping every down-th sample is the convolution's stride: the samples dropped are never computed.
    if kernel.dim() == 2:
        return F.conv2d(x, weight, groups=channels, stride=down)
    x = F.conv2d(x, weight.unsqueeze(2), groups=channels, stride=(1, down))  # along the rows
    return F.conv2d(x, weight.unsqueeze(3), groups=channels, stride=(down, 1))  # along the columns


def upsample2d(x: Tensor, kernel: Tensor, factor: int = 2) -> Tensor:
    """``x`` at ``factor`` times its resolution, low-pass filtered by ``kernel`` (its DC gain kept)."""
    size = kernel.shape[-1]
    before, after = (size + factor - 1) // 2, (size - factor) // 2
    return upfirdn2d(x, kernel, up=factor, padding=(before, after, before, after), gain=factor**2)
