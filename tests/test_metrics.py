"""ROIR on constructed cases whose answer is known, and the held-out relative error against float64."""

from __future__ import annotations

import pytest
import torch

from panda_lightning.functional.factorization import project_orthonormal_
from panda_lightning.metrics import ROIR, RelativeError, region_change, roir, roir_ratios


def _mask():
    mask = torch.zeros(4, 4)
    mask[:, :1] = 1  # 4 of 16 pixels
    return mask


def test_an_edit_confined_to_the_mask_scores_zero():
    original = torch.rand(2, 3, 4, 4)
    assert roir(original, original + 0.3 * _mask(), _mask()) == 0


def test_a_uniform_global_change_scores_the_root_of_the_area_ratio():
    original = torch.rand(2, 3, 4, 4)
    # ||(1-M) d|| / ||M d|| for a uniform change d is sqrt(12 pixels / 4 pixels).
    torch.testing.assert_close(roir(original, original + 0.1, _mask()), torch.tensor(3.0).sqrt())


def test_the_metric_accumulates_the_mean_over_batches():
    metric = ROIR()
    original = torch.rand(3, 3, 4, 4)
    edits = [original + 0.1, original + 0.3 * _mask(), original + 0.2 * torch.rand(3, 3, 4, 4)]
    for edited in edits:
        metric.update(original, edited, _mask())
    expected = torch.stack([roir(original, edited, _mask()) for edited in edits]).mean()
    torch.testing.assert_close(metric.compute(), expected)


def test_per_sample_masks_are_used_per_sample():
    original = torch.zeros(2, 1, 4, 4)
    masks = torch.stack([_mask(), _mask().flip(1)])
    assert roir(original, original + masks[:, None], masks) == 0


@pytest.mark.parametrize(
    "edited_shape, mask_shape, message",
    [
        ((2, 3, 4, 5), (4, 4), r"original \(2, 3, 4, 4\) and edited \(2, 3, 4, 5\) must be images of one shape"),
        ((2, 3, 4, 4), (8, 8), r"mask has shape \(8, 8\); its last two sizes must be the images' \(4, 4\)"),
    ],
)
def test_mismatched_shapes_are_named(edited_shape, mask_shape, message):
    with pytest.raises(ValueError, match=message):
        roir(torch.zeros(2, 3, 4, 4), torch.zeros(edited_shape), torch.zeros(mask_shape))


def test_roir_ratios_are_the_per_sample_terms_of_roir():
    original = torch.rand(3, 3, 4, 4)
    edited = original + 0.2 * torch.rand(3, 3, 4, 4)
    ratios = roir_ratios(original, edited, _mask())
    assert ratios.shape == (3,)
    torch.testing.assert_close(ratios.mean(), roir(original, edited, _mask()))
    torch.testing.assert_close(ratios[1], roir(original[1:2], edited[1:2], _mask()))


def test_region_change_is_the_rms_change_inside_the_region_only():
    original = torch.rand(2, 3, 4, 4)
    inside_only = original + 0.3 * _mask() + 5.0 * (1 - _mask()) * torch.tensor([0.0, 1.0])[:, None, None, None]
    # Sample 0 changes by 0.3 inside; sample 1 also by 5 outside, which does not count.
    torch.testing.assert_close(region_change(original, inside_only, _mask()), torch.tensor([0.3, 0.3]))
    soft = 0.5 * _mask()  # the change is weighted by M inside the norm, the area by M
    torch.testing.assert_close(region_change(original, original + 0.2, soft), torch.tensor([0.2 / 2**0.5] * 2))


@pytest.mark.parametrize("noise", [1.0, 1e-3], ids=["a typical fit", "near a perfect fit"])
def test_the_relative_error_of_float32_batches_is_float64s(noise):
    generator = torch.Generator().manual_seed(0)
    A = project_orthonormal_(torch.randn(16, 6, generator=generator))
    P = project_orthonormal_(torch.rand(40, 5, generator=generator))  # P^T P = I: Z P P^T = Z on the span
    codes = torch.randn(20, 6, 5, generator=generator)
    Z = A @ codes @ P.T + noise * torch.randn(20, 16, 40, generator=generator)  # (N, C, S)
    Z64, A64, P64 = Z.double(), A.double(), P.double()
    expected = (Z64 - A64 @ A64.T @ Z64 @ P64 @ P64.T).square().sum() / Z64.square().sum()
    metric = RelativeError()
    for batch in Z.split(7):  # batches of 7, 7 and 6
        metric.update(batch, A, P)
    # (near a perfect fit the expanded form of the loss is off by 1.5e-5 here; the residual formed explicitly by 6e-8)
    torch.testing.assert_close(metric.compute().double(), expected, rtol=1e-6, atol=0)
    assert expected < 1e-4 if noise < 1 else expected > 0.1
