"""How alike two images are: PSNR, SSIM and its multi-scale form MS-SSIM (Wang et al., 2003), as
losses and as reports of how well a photo is reconstructed. Nothing to download: no network.

Images ``(N, 3, H, W)`` in ``[0, 1]``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

# Wang et al.'s constants and window; MS-SSIM's weights of its five scales.
K1, K2 = 0.01, 0.03
WINDOW, SIGMA = 11, 1.5
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def psnr(x: Tensor, y: Tensor) -> Tensor:
    """Peak signal-to-noise ratio in dB of each image pair, ``(N,)``: ``10 log10(1 / MSE)``."""
    mse = (x - y).square().flatten(1).mean(dim=1)
    return 10 * torch.log10(1 / mse.clamp_min(1e-12))


def _gaussian_window(size: int, sigma: float, like: Tensor) -> Tensor:
    coordinates = torch.arange(size, dtype=like.dtype, device=like.device) - (size - 1) / 2
    window = torch.exp(-coordinates.square() / (2 * sigma**2))
    return window / window.sum()


def _blurred(x: Tensor, window: Tensor) -> Tensor:
    """Each channel filtered by the separable window, ``valid`` (no padding), as Wang et al. do."""
    channels = x.shape[1]
    x = F.conv2d(x, window.view(1, 1, 1, -1).expand(channels, 1, 1, -1), groups=channels)
    return F.conv2d(x, window.view(1, 1, -1, 1).expand(channels, 1, -1, 1), groups=channels)


def _ssim_terms(x: Tensor, y: Tensor, window: Tensor) -> tuple[Tensor, Tensor]:
    """The luminance term and the contrast-structure term, each averaged over the image, ``(N,)``."""
    c1, c2 = K1**2, K2**2
    mean_x, mean_y = _blurred(x, window), _blurred(y, window)
    var_x = _blurred(x * x, window) - mean_x.square()
    var_y = _blurred(y * y, window) - mean_y.square()
    covariance = _blurred(x * y, window) - mean_x * mean_y
    luminance = (2 * mean_x * mean_y + c1) / (mean_x.square() + mean_y.square() + c1)
    contrast_structure = (2 * covariance + c2) / (var_x + var_y + c2)
    return (luminance * contrast_structure).flatten(1).mean(dim=1), contrast_structure.flatten(1).mean(dim=1)


def ssim(x: Tensor, y: Tensor, window: int = WINDOW) -> Tensor:
    """Structural similarity of each image pair, ``(N,)``: 1 for equal images (Gaussian window of
    ``window`` pixels, sigma 1.5; images at least that large)."""
    _check(x, y, window)
    return _ssim_terms(x, y, _gaussian_window(window, SIGMA, x))[0]


def scales_for(size: int, window: int = WINDOW) -> int:
    """How many of MS-SSIM's five scales an image of ``size`` pixels (its shorter side) has room for:
    each halves it, and the smallest must still hold the window."""
    scales = 1
    while scales < len(MS_SSIM_WEIGHTS) and size // 2**scales >= window:
        scales += 1
    return scales


def ms_ssim(x: Tensor, y: Tensor, window: int = WINDOW) -> Tensor:
    """Multi-scale structural similarity of each image pair, ``(N,)``: the contrast-structure terms
    of the finer scales and SSIM at the coarsest, weighted as Wang et al. do. A small image uses the
    scales it has room for (:func:`scales_for`: three at 64 px), their weights renormalised."""
    _check(x, y, window)
    scales = scales_for(min(x.shape[-2:]), window)
    weights = torch.tensor(MS_SSIM_WEIGHTS[:scales], dtype=x.dtype, device=x.device)
    weights = weights / weights.sum()
    kernel = _gaussian_window(window, SIGMA, x)
    terms = []
    for scale in range(scales):
        whole, contrast_structure = _ssim_terms(x, y, kernel)
        terms.append(whole if scale == scales - 1 else contrast_structure)
        x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
    # Negative terms (anti-correlated structure) to a power are undefined: clamped, as is usual.
    return torch.stack(terms, dim=1).clamp_min(1e-6).pow(weights).prod(dim=1)


def _check(x: Tensor, y: Tensor, window: int) -> None:
    if x.shape != y.shape or x.ndim != 4:
        raise ValueError(f"the images must be two batches (N, C, H, W) of one shape; got {tuple(x.shape)} and {tuple(y.shape)}.")
    if min(x.shape[-2:]) < window:
        raise ValueError(f"images of {tuple(x.shape[-2:])} pixels are smaller than the {window}-pixel window of SSIM.")
