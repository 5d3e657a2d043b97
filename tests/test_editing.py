"""Edits, saliency, localisation, concept rewriting and ranking against direct computations."""

from __future__ import annotations

import pytest
import torch
from einops import rearrange

from panda_lightning.functional.editing import (
    appearance_scores,
    appearance_spread,
    border_mask,
    local_edit,
    localise,
    part_mask,
    remove_object,
    rewrite_concept,
    saliency_maps,
    saliency_sums,
)
from panda_lightning.generators.layers import with_replaced_output
from panda_lightning.metrics import roir


@pytest.fixture
def factors():
    generator = torch.Generator().manual_seed(0)
    Z = torch.randn(3, 6, 4, 5, generator=generator, dtype=torch.float64)
    A = torch.linalg.qr(torch.randn(6, 6, generator=generator, dtype=torch.float64))[0]
    P = torch.rand(20, 3, generator=generator, dtype=torch.float64)
    return Z, A, P


def _fitted_like_appearances(C, R_C, seed):
    """Appearances as a fit may leave them: neither orthogonal nor of unit norm."""
    generator = torch.Generator().manual_seed(seed)
    A = torch.randn(C, R_C, generator=generator, dtype=torch.float64)
    return A * torch.linspace(0.5, 2.0, R_C, dtype=torch.float64)


def test_part_mask_is_the_part_scaled_to_one(factors):
    _, _, P = factors
    mask = part_mask(P, 1, 4, 5)
    assert mask.shape == (4, 5) and mask.max() == 1
    torch.testing.assert_close(mask.flatten(), P[:, 1] / P[:, 1].max())


def test_local_edit_adds_each_appearance_at_its_mask(factors):
    Z, A, P = factors
    masks = [part_mask(P, k, 4, 5) for k in (0, 2)]
    edited = local_edit(Z, A, [(masks[0], 1, 2.0), (masks[1], 4, -0.5)])
    expected = Z + 2.0 * A[:, 1, None, None] * masks[0] - 0.5 * A[:, 4, None, None] * masks[1]
    torch.testing.assert_close(edited, expected)
    torch.testing.assert_close(local_edit(Z, A, [(masks[0], 1, 0.0)]), Z)


def test_edit_strength_is_a_length_in_the_activations_units_whatever_the_appearances_norms(factors):
    Z, _, P = factors
    A = _fitted_like_appearances(6, 5, seed=2)
    mask = part_mask(P, 1, 4, 5)
    for j in (0, 4):  # column norms differ by a factor of about 4
        change = local_edit(Z, A, [(mask, j, 2.5)]) - Z
        lengths = torch.linalg.vector_norm(change, dim=1)  # (N, H, W)
        torch.testing.assert_close(lengths, (2.5 * mask).expand_as(lengths), rtol=1e-12, atol=1e-12)
        direction = change[0, :, mask == 1][:, 0]
        torch.testing.assert_close(direction / 2.5, A[:, j] / A[:, j].norm())


def test_each_sample_is_edited_at_its_own_refined_part(factors):
    Z, A, P = factors
    own_parts = torch.stack([P, P.flip(0), P.roll(3, dims=0)])  # (N, S, R_S): one per sample
    masks = part_mask(own_parts, 2, 4, 5)
    assert masks.shape == (3, 4, 5)
    edited = local_edit(Z, A, [(masks, 1, 2.0)])
    for i in range(3):  # sample i, edited alone at its own part, is what the batch edit gave it
        alone = local_edit(Z[i : i + 1], A, [(part_mask(own_parts[i], 2, 4, 5), 1, 2.0)])
        torch.testing.assert_close(edited[i : i + 1], alone)
    assert not torch.allclose(edited[1], local_edit(Z, A, [(masks[0], 1, 2.0)])[1])
    with pytest.raises(ValueError, match=r"edits\[0\] mask holds 2 samples' masks for 3 samples"):
        local_edit(Z, A, [(masks[:2], 1, 2.0)])


def test_a_mask_at_image_resolution_is_averaged_to_the_layer(factors):
    Z, A, _ = factors  # layer 4 x 5; an "image" 4 times larger
    image_mask = torch.zeros(16, 20)
    image_mask[4:8, 8:12] = 1  # exactly layer position (1, 2)
    image_mask[0:2, 0:4] = 1  # half of layer position (0, 0)
    layer_mask = torch.zeros(4, 5)
    layer_mask[1, 2], layer_mask[0, 0] = 1.0, 0.5
    torch.testing.assert_close(local_edit(Z, A, [(image_mask, 2, 1.5)]), local_edit(Z, A, [(layer_mask, 2, 1.5)]))


def test_a_hand_drawn_mask_edits_only_its_pixels(factors):
    Z, A, _ = factors
    eye = torch.zeros(4, 5)
    eye[1, 3] = 1  # one position: pixel-level control
    change = local_edit(Z, A, [(eye, 0, 3.0)]) - Z
    assert change[..., 1, 3].abs().sum() > 0
    change[..., 1, 3] = 0
    assert change.abs().max() == 0


@pytest.mark.parametrize(
    "edit, message",
    [
        ((torch.ones(4, 5), 6, 1.0), r"edits\[0\] appearance=6 must be an integer from 0 to 5 \(an index into the 6 appearances\)"),
        ((torch.ones(4, 5), -1, 1.0), r"appearance=-1 must be an integer from 0 to 5"),
        ((torch.ones(4, 5), 0, float("nan")), r"edits\[0\] alpha=nan must be a finite number"),
        ((torch.ones(16, 16), 0, 1.0), r"edits\[0\] mask has shape \(16, 16\); it must be the layer's \(H, W\) = \(4, 5\) or a whole multiple"),
        ((torch.ones(4), 0, 1.0), r"edits\[0\] mask has shape \(4,\)"),
    ],
)
def test_bad_edits_are_named(factors, edit, message):
    Z, A, _ = factors
    with pytest.raises(ValueError, match=message):
        local_edit(Z, A, [edit])


def test_saliency_is_the_change_of_basis_and_localisation_thresholds_at_the_mean(factors):
    Z, A, _ = factors
    maps = saliency_maps(Z, A)
    torch.testing.assert_close(maps, torch.einsum("cr,nchw->nrhw", A, Z))
    torch.testing.assert_close(maps[1, 2], (A[:, 2] @ rearrange(Z[1], "c h w -> c (h w)")).view(4, 5))
    halves = [saliency_sums(z, A) for z in (Z[:1], Z[1:])]
    mean = (halves[0][0] + halves[1][0]) / (halves[0][1] + halves[1][1])
    torch.testing.assert_close(mean, maps.mean(dim=(0, 2, 3)))
    located = localise(maps, mean)
    assert located.dtype == torch.bool and torch.equal(located, maps >= mean.view(1, -1, 1, 1))


def test_rewriting_moves_the_positive_part_of_one_concept_to_another(factors):
    Z, A, _ = factors
    rewritten = rewrite_concept(Z, A, source=1, target=3, alpha=0.5)
    # Eq. 14-16 as printed, for a full orthogonal basis: Zhat = A^T Z, edited, mapped back by A.
    coefficients = torch.einsum("cr,nchw->nrhw", A, Z)
    positive = coefficients[:, 1].clamp(min=0)
    coefficients[:, 3] += 0.5 * positive
    coefficients[:, 1] -= positive
    torch.testing.assert_close(rewritten, torch.einsum("cr,nrhw->nchw", A, coefficients))
    new = torch.einsum("cr,nchw->nrhw", A, rewritten)
    assert (new[:, 1] <= 1e-12).all()  # only the negative part of the source remains


@pytest.mark.parametrize("rank", [6, 4])
def test_rewriting_is_exact_for_appearances_that_are_not_orthonormal(factors, rank):
    Z = factors[0]
    A = _fitted_like_appearances(6, rank, seed=1)
    assert (A.T @ A - torch.eye(rank, dtype=A.dtype)).norm() > 1  # far from the paper's basis
    for j in range(rank):  # a concept rewritten into itself changes nothing
        torch.testing.assert_close(rewrite_concept(Z, A, j, j, 1.0), Z, rtol=0, atol=1e-12)
    rewritten = rewrite_concept(Z, A, source=2, target=0, alpha=1.5)
    coefficients = torch.linalg.lstsq(A, rearrange(Z, "n c h w -> c (n h w)")).solution
    source = rearrange(coefficients[2], "(n h w) -> n h w", n=3, h=4)
    absent = source <= 0
    assert 0 < absent.sum() < absent.numel()
    change = rewritten - Z
    assert change.permute(0, 2, 3, 1)[absent].abs().max() == 0  # untouched where the source is absent
    expected = torch.einsum("c,nhw->nchw", 1.5 * A[:, 0] - A[:, 2], source.clamp(min=0))
    torch.testing.assert_close(change, expected, rtol=1e-10, atol=1e-12)


def test_rewriting_checks_its_concepts_and_strength(factors):
    Z, A, _ = factors
    with pytest.raises(ValueError, match=r"target=9 must be an integer from 0 to 5 \(an index into the 6 appearances\)"):
        rewrite_concept(Z, A, 0, 9)
    with pytest.raises(ValueError, match=r"source=-1 must be an integer from 0 to 3 \(an index into the 4 appearances\)"):
        rewrite_concept(Z, A[:, :4], -1, 1)
    with pytest.raises(ValueError, match=r"alpha=inf must be a finite number"):
        rewrite_concept(Z, A, 0, 1, float("inf"))


def test_ranking_scores_sum_the_saliency_overall_or_at_each_part(factors):
    Z, A, P = factors
    maps = saliency_maps(Z, A)[:, 2].flatten(1)
    torch.testing.assert_close(appearance_scores(Z, A, 2), maps.sum(1))
    torch.testing.assert_close(appearance_scores(Z, A, 2, P), maps @ P)
    with pytest.raises(ValueError, match=r"appearance=7 must be an integer from 0 to"):
        appearance_scores(Z, A, 7)


def test_the_spread_at_a_region_is_the_deviation_of_eq_18s_score_at_unit_appearances(factors):
    Z, _, P = factors
    A = _fitted_like_appearances(6, 4, seed=1)  # scaled, as a fit leaves them: the spread must not see the scale
    unit = A / A.norm(dim=0)
    region = P[:, 1].reshape(4, 5)
    scores = torch.stack([appearance_scores(Z, unit, j, (P[:, 1] / P[:, 1].sum())[:, None])[:, 0] for j in range(4)], 1)
    torch.testing.assert_close(appearance_spread(saliency_maps(Z, unit), region), scores.std(dim=0))
    # One region per sample: each sample's score at its own region.
    regions = P.T.reshape(3, 4, 5)
    weights = P / P.sum(dim=0)
    own = torch.stack([
        torch.stack([appearance_scores(Z, unit, j, weights)[i, i] for i in range(3)]) for j in range(4)
    ], 1)
    torch.testing.assert_close(appearance_spread(saliency_maps(Z, unit), regions), own.std(dim=0))
    with pytest.raises(ValueError, match=r"region has shape \(5, 4\); it must be \(H, W\) or \(N, H, W\) with \(H, W\) = \(4, 5\)"):
        appearance_spread(saliency_maps(Z, unit), region.T)


def test_an_edit_at_a_corner_of_the_layer_changes_the_image_mostly_there(tiny_generator):
    latents = torch.randn(4, 8, 1, 1)
    corner = torch.zeros(8, 8)
    corner[:3, :3] = 1
    A = torch.eye(8)
    with torch.no_grad():
        original = tiny_generator(latents)
        unchanged = with_replaced_output(tiny_generator, "main.3", lambda z: local_edit(z, A, [(corner, 0, 0.0)]), lambda: tiny_generator(latents))
        edited = with_replaced_output(tiny_generator, "main.3", lambda z: local_edit(z, A, [(corner, 0, 5.0)]), lambda: tiny_generator(latents))
    torch.testing.assert_close(unchanged, original)
    image_mask = torch.zeros(16, 16)
    image_mask[:8, :8] = 1  # the corner upsampled x2, plus the last layer's receptive field
    assert roir(original, edited, image_mask) < 0.05
    assert (edited - original).abs().sum() > 0


def test_border_mask_is_a_ring():
    ring = border_mask(8, 8)
    assert ring.sum() == 8 * 8 - 6 * 6 and not ring[1:-1, 1:-1].any()
    assert border_mask(16, 16, thickness=3).sum() == 16 * 16 - 10 * 10


def test_removal_fills_the_mask_with_the_samples_own_border_background(factors):
    Z, _, _ = factors  # (3, 6, 4, 5)
    ring = border_mask(4, 5, thickness=1)
    mask = torch.zeros(4, 5, dtype=Z.dtype)
    mask[1, 1], mask[2, 3] = 1.0, 0.5
    removed = remove_object(Z, mask, ring)
    background = Z[..., ring].mean(-1)  # (3, 6)
    torch.testing.assert_close(removed[..., 1, 1], background)
    torch.testing.assert_close(removed[..., 2, 3], 0.5 * Z[..., 2, 3] + 0.5 * background)
    untouched = mask == 0
    torch.testing.assert_close(removed[..., untouched], Z[..., untouched])
    with pytest.raises(ValueError, match=r"mask has shape \(8, 8\); it must be the layer's \(H, W\) = \(4, 5\)"):
        remove_object(Z, torch.zeros(8, 8), ring)
