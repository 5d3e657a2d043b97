"""LowRankGAN and ReSeFa on a toy generator whose answer is known: latent dimensions 0 and 1
change only the region, 2 and 3 only the rest, 4 and 5 both (more strongly inside than 0 and 1)."""

from __future__ import annotations

import pytest
import torch

from benchmarks.evidence.locality.region_directions import jacobian_grams, lowrankgan_directions, resefa_directions

REGION = torch.zeros(4, 4)
REGION[:2, :2] = 1  # 4 of 16 pixels


def _toy_weight() -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(2, 16, 6, generator=generator, dtype=torch.float64)  # (channels, pixels, latent)
    inside = REGION.flatten().bool()
    weight[:, ~inside, 0:2] = 0  # dimensions 0, 1: the region alone
    weight[:, inside, 2:4] = 0  # dimensions 2, 3: the rest alone
    weight[:, inside, 4:6] *= 3  # dimensions 4, 5: both, the region most
    return weight


def _toy_generate(latents: torch.Tensor) -> torch.Tensor:
    """``tanh(W z)``: (n, 6) -> (n, 2, 4, 4). Its Jacobian keeps W's pattern of zeros."""
    return torch.tanh(torch.einsum("cpd,nd->ncp", _toy_weight().to(latents), latents)).reshape(-1, 2, 4, 4)


def _latents(count: int = 8) -> torch.Tensor:
    return 0.3 * torch.randn(count, 6, generator=torch.Generator().manual_seed(1), dtype=torch.float64)


def _share_in_region_dimensions(directions: torch.Tensor) -> torch.Tensor:
    """How much of each unit direction lies along latent dimensions 0 and 1."""
    return directions[:, :2].norm(dim=1)


def test_jacobian_grams_equal_autograds_jacobians_in_float64():
    latents = _latents(5)
    masks = torch.rand(5, 4, 4, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    inside, outside = jacobian_grams(_toy_generate, latents, masks, chunk=2)
    expected_inside, expected_outside = torch.zeros(6, 6, dtype=torch.float64), torch.zeros(6, 6, dtype=torch.float64)
    for latent, mask in zip(latents, masks):
        jacobian = torch.autograd.functional.jacobian(lambda z: _toy_generate(z[None])[0], latent).reshape(2, 16, 6)
        weights = mask.flatten()[None, :, None]
        expected_inside += torch.einsum("cpd,cpe->de", jacobian * weights, jacobian)
        expected_outside += torch.einsum("cpd,cpe->de", jacobian * (1 - weights), jacobian)
    torch.testing.assert_close(inside, expected_inside, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(outside, expected_outside, rtol=1e-12, atol=1e-12)


def test_the_grams_of_several_regions_are_each_regions_own():
    latents = _latents(3)
    masks = torch.rand(3, 2, 4, 4, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    inside, outside = jacobian_grams(_toy_generate, latents, masks)
    assert inside.shape == outside.shape == (2, 6, 6)
    for region in range(2):
        alone = jacobian_grams(_toy_generate, latents, masks[:, region])
        torch.testing.assert_close(inside[region], alone[0])
        torch.testing.assert_close(outside[region], alone[1])


@pytest.fixture(scope="module")
def grams():
    latents = _latents()
    return jacobian_grams(_toy_generate, latents, REGION.expand(len(latents), 4, 4).double())


def test_the_toy_fools_the_regions_own_principal_directions(grams):
    inside, _ = grams
    leading = torch.linalg.eigh(inside).eigenvectors[:, -2:].T  # what moves the region most
    assert (_share_in_region_dimensions(leading) < 0.5).all()


@pytest.mark.parametrize("method", [lowrankgan_directions, resefa_directions], ids=["lowrankgan", "resefa"])
def test_both_find_the_directions_that_change_the_region_alone(grams, method):
    kwargs = {"rest_energy": 0.999} if method is lowrankgan_directions else {}
    directions = method(*grams, num_directions=2, **kwargs)
    assert directions.shape == (2, 6)
    torch.testing.assert_close(directions.norm(dim=1), torch.ones(2, dtype=torch.float64))
    assert (_share_in_region_dimensions(directions) > 1 - 1e-6).all()
    if method is lowrankgan_directions:  # eigenvectors within an orthonormal basis: orthonormal too
        assert abs(directions[0] @ directions[1]) < 1e-6


def test_bad_input_is_named(grams):
    inside, outside = grams
    with pytest.raises(ValueError, match=r"num_directions=7 must be an integer .* D = 6"):
        resefa_directions(inside, outside, 7)
    with pytest.raises(ValueError, match="rest_energy=1.0"):
        lowrankgan_directions(inside, outside, 2, rest_energy=1.0)
    with pytest.raises(ValueError, match=r"masks has shape \(3, 4, 4\); it must be \(N, H, W\) or \(N, R, H, W\) with N = 8"):
        jacobian_grams(_toy_generate, _latents(), torch.ones(3, 4, 4))
