"""PSNR, SSIM and MS-SSIM against a plain computation of Wang et al.'s formulas."""

from __future__ import annotations

import math

import pytest
import torch

from panda_lightning.functional.similarity import ms_ssim, psnr, scales_for, ssim


def wang_ssim(x: torch.Tensor, y: torch.Tensor, size: int = 11, sigma: float = 1.5) -> float:
    """SSIM of two single-channel images, window by window, in float64: Wang et al.'s Eq. 13 and
    the mean SSIM index over the valid windows."""
    c1, c2 = (0.01) ** 2, (0.03) ** 2
    g = torch.tensor([math.exp(-((i - (size - 1) / 2) ** 2) / (2 * sigma**2)) for i in range(size)], dtype=torch.float64)
    w = torch.outer(g, g) / torch.outer(g, g).sum()
    values = []
    for top in range(x.shape[0] - size + 1):
        for left in range(x.shape[1] - size + 1):
            a, b = x[top : top + size, left : left + size], y[top : top + size, left : left + size]
            mu_a, mu_b = (w * a).sum(), (w * b).sum()
            var_a, var_b = (w * (a - mu_a) ** 2).sum(), (w * (b - mu_b) ** 2).sum()
            cov = (w * (a - mu_a) * (b - mu_b)).sum()
            values.append(((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)))
    return torch.stack(values).mean().item()


def test_ssim_is_wangs_on_random_images():
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(1, 1, 20, 18, generator=generator, dtype=torch.float64)
    y = (x + 0.2 * torch.randn(1, 1, 20, 18, generator=generator, dtype=torch.float64)).clamp(0, 1)
    assert ssim(x, y).item() == pytest.approx(wang_ssim(x[0, 0], y[0, 0]), rel=1e-10)
    colour = torch.cat([x, y, x.flip(-1)], dim=1)  # the mean over channels of each one's SSIM
    other = torch.cat([y, x, y], dim=1)
    expected = (2 * wang_ssim(x[0, 0], y[0, 0]) + wang_ssim(x[0, 0].flip(-1), y[0, 0])) / 3
    assert ssim(colour, other).item() == pytest.approx(expected, rel=1e-10)


def test_equal_images_score_one_and_noise_lowers_both():
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(ssim(x, x), torch.ones(2)) and torch.allclose(ms_ssim(x, x), torch.ones(2))
    noisy = [(x + s * torch.randn_like(x)).clamp(0, 1) for s in (0.02, 0.1, 0.3)]
    assert ms_ssim(x, noisy[0])[0] > ms_ssim(x, noisy[1])[0] > ms_ssim(x, noisy[2])[0]
    assert ssim(x, noisy[0])[0] > ssim(x, noisy[1])[0] > ssim(x, noisy[2])[0]


def test_psnr_and_the_scales_an_image_has_room_for():
    x = torch.zeros(1, 3, 8, 8)
    assert psnr(x, x + 0.1).item() == pytest.approx(20.0, abs=1e-4)  # MSE 0.01
    assert [scales_for(size) for size in (11, 21, 22, 64, 176, 1024)] == [1, 1, 2, 3, 5, 5]
    with pytest.raises(ValueError, match=r"smaller than the 11-pixel window"):
        ssim(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8))
    with pytest.raises(ValueError, match=r"two batches \(N, C, H, W\) of one shape"):
        ms_ssim(torch.zeros(1, 3, 16, 16), torch.zeros(1, 3, 16, 17))
