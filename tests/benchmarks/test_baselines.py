"""SeFa, GANSpace and k-means parts against independent computations and planted structure."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from benchmarks.evidence.locality.baselines import (
    GANSpace,
    channel_fibres,
    cluster_masks,
    cluster_parts,
    edit_latents,
    ganspace_directions,
    kmeans,
    latent_weight,
    sefa_directions,
)
from panda_lightning.functional.editing import local_edit, part_mask


def assert_same_up_to_sign(found, expected, atol=1e-8):
    """Rows of ``found`` equal rows of ``expected`` up to each row's sign."""
    cosines = (found * expected).sum(dim=1).abs()
    torch.testing.assert_close(cosines, torch.ones_like(cosines), rtol=0, atol=atol)


# -- SeFa ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "module",
    [
        nn.Linear(5, 7, bias=False),
        nn.ConvTranspose2d(5, 3, 4, 1, 0, bias=False),
        nn.ConvTranspose2d(5, 3, 4, 1, 1, bias=False),  # padding crops the output
        nn.ConvTranspose2d(5, 3, 3, 2, 0, output_padding=1, bias=False),  # zero rows: no weights
    ],
    ids=["linear", "convtranspose", "convtranspose-padded", "convtranspose-output-padding"],
)
def test_latent_weight_maps_a_latent_to_the_layer_output(module):
    torch.manual_seed(0)
    z = torch.randn(4, 5)
    weight = latent_weight(module)
    if isinstance(module, nn.Linear):
        torch.testing.assert_close(z @ weight, module(z).detach())
    else:
        output = module(z[:, :, None, None]).detach()
        if module.output_padding != (0, 0):  # the padded last row and column are zero
            assert output[..., -1, :].abs().max() == 0 and output[..., :, -1].abs().max() == 0
            output = output[..., :-1, :-1]
        torch.testing.assert_close(z @ weight, output.flatten(1))


def test_latent_weight_of_the_face_dcgan_is_its_first_layer():
    pytest.importorskip("gan_face_generate")
    from panda_lightning.generators import FaceDCGAN

    first = FaceDCGAN().main[0]
    weight = latent_weight(first)
    assert weight.shape == (100, 512 * 4 * 4)
    z = torch.randn(3, 100, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(z @ weight, first(z[:, :, None, None]).detach().flatten(1), rtol=1e-4, atol=1e-5)


def test_latent_weight_refuses_other_layers():
    with pytest.raises(TypeError, match="an nn.Linear or an nn.ConvTranspose2d .* got Conv2d"):
        latent_weight(nn.Conv2d(5, 3, 3))
    with pytest.raises(ValueError, match=r"groups=1 and dilation=1; this one has groups=5"):
        latent_weight(nn.ConvTranspose2d(5, 5, 3, groups=5))


@pytest.fixture
def weight():
    return torch.randn(6, 20, generator=torch.Generator().manual_seed(1), dtype=torch.float64)


def test_sefa_directions_are_the_top_eigenvectors_of_the_gram_matrix(weight):
    directions = sefa_directions(weight, 4)
    assert directions.shape == (4, 6)
    torch.testing.assert_close(directions @ directions.T, torch.eye(4, dtype=torch.float64))
    # Independently: the paper's A = W^T maps z to the output, A^T A is D x D.
    A = weight.T
    eigenvalues, eigenvectors = torch.linalg.eigh(A.T @ A)
    order = eigenvalues.argsort(descending=True)[:4]
    assert_same_up_to_sign(directions, eigenvectors[:, order].T)
    rayleigh = ((directions @ weight) ** 2).sum(dim=1)
    torch.testing.assert_close(rayleigh, eigenvalues[order])
    assert (directions.gather(1, directions.abs().argmax(1, keepdim=True)) > 0).all()  # signs fixed


def test_sefa_direction_0_moves_the_first_layer_most(weight):
    top = sefa_directions(weight, 1)[0]
    others = torch.randn(2000, 6, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    others = others / others.norm(dim=1, keepdim=True)
    assert (top @ weight).norm() >= (others @ weight).norm(dim=1).max()
    last = sefa_directions(weight, 6)[-1]
    assert (last @ weight).norm() <= (others @ weight).norm(dim=1).min()


def test_sefa_normalises_columns_as_the_official_code(weight):
    scaled = weight / weight.norm(dim=0, keepdim=True)
    torch.testing.assert_close(sefa_directions(weight, 3, normalise_columns=True), sefa_directions(scaled, 3))
    # Rescaling one output changes the plain directions, not the normalised ones.
    stretched = weight.clone()
    stretched[:, 0] *= 100
    torch.testing.assert_close(
        sefa_directions(stretched, 3, normalise_columns=True), sefa_directions(weight, 3, normalise_columns=True)
    )


@pytest.mark.parametrize("bad", [0, 7, 2.5, True])
def test_sefa_rejects_a_bad_number_of_directions(weight, bad):
    with pytest.raises(ValueError, match=rf"num_directions={bad!r} must be an integer from 1 to 6 \(the latent has D = 6"):
        sefa_directions(weight, bad)


def test_sefa_rejects_a_weight_that_is_no_matrix(weight):
    with pytest.raises(ValueError, match=r"weight has shape \(6, 20, 1\); it must be \(D, F\)"):
        sefa_directions(weight[..., None], 2)


# -- GANSpace --------------------------------------------------------------------------------


def linear_generator(num_samples=500, seed=3):
    """``y = z M`` with ``M = U diag(s) V^T`` of known singular vectors, and latents whose sample
    mean is 0 and covariance exactly I, so that GANSpace must return ``U``'s columns exactly."""
    generator = torch.Generator().manual_seed(seed)
    latent_dim, num_features = 8, 30
    U = torch.linalg.qr(torch.randn(latent_dim, latent_dim, generator=generator, dtype=torch.float64))[0]
    V = torch.linalg.qr(torch.randn(num_features, latent_dim, generator=generator, dtype=torch.float64))[0]
    singular_values = torch.tensor([10.0, 8, 6, 4, 2, 1, 0.5, 0.25], dtype=torch.float64)
    M = U @ torch.diag(singular_values) @ V.T
    z = torch.randn(num_samples, latent_dim, generator=generator, dtype=torch.float64)
    z = torch.linalg.qr(z - z.mean(dim=0))[0] * num_samples**0.5  # whitened
    return z, z @ M, U


def test_ganspace_recovers_the_planted_latent_directions():
    z, y, U = linear_generator()
    directions = ganspace_directions(z, y, 4)
    assert directions.shape == (4, 8)
    assert_same_up_to_sign(directions, U[:, :4].T)
    torch.testing.assert_close(directions.norm(dim=1), torch.ones(4, dtype=torch.float64))


def test_ganspace_spans_the_planted_subspace_from_gaussian_latents():
    z, _, U = linear_generator()
    z = torch.randn(20000, 8, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    M = U @ torch.diag(torch.tensor([10.0, 8, 6, 4, 2, 1, 0.5, 0.25], dtype=torch.float64)) @ U.T
    directions = ganspace_directions(z, z @ M, 3)
    # Cosines of the principal angles between span(directions) and span(U[:, :3]).
    cosines = torch.linalg.svdvals(torch.linalg.qr(directions.T)[0].T @ U[:, :3])
    assert cosines.min() > 0.999


def test_streamed_ganspace_equals_all_at_once():
    generator = torch.Generator().manual_seed(5)
    z = torch.randn(300, 10, 1, 1, generator=generator, dtype=torch.float64)  # a DCGAN-shaped latent
    y = torch.relu(z.flatten(1) @ torch.randn(10, 40, generator=generator, dtype=torch.float64)).view(300, 4, 2, 5)
    streamed = GANSpace()
    for start in range(0, 300, 64):  # uneven last batch
        streamed.update(z[start : start + 64], y[start : start + 64])
    torch.testing.assert_close(streamed.compute(5), ganspace_directions(z, y, 5))


def test_ganspace_rejects_bad_input():
    z, y, _ = linear_generator(num_samples=20)
    with pytest.raises(ValueError, match=r"num_directions=9 must be an integer from 1 to 8 \(at most the latent's D = 8"):
        ganspace_directions(z, y, 9)
    with pytest.raises(ValueError, match=r"num_directions=8 must be an integer from 1 to 4 .*N - 1 = 4"):
        ganspace_directions(z[:5], y[:5], 8)
    with pytest.raises(ValueError, match="latents hold 20 samples and activations 19"):
        ganspace_directions(z, y[:19], 2)
    with pytest.raises(ValueError, match=r"latents has shape \(20,\); it must be \(N, ...\)"):
        ganspace_directions(z[:, 0], y, 2)
    with pytest.raises(RuntimeError, match="compute before any update"):
        GANSpace().compute(2)
    streamed = GANSpace()
    streamed.update(z, y)
    with pytest.raises(ValueError, match=r"this batch has D, F = \(8, 29\); the earlier ones had \(8, 30\)"):
        streamed.update(z, y[:, :29])


# -- k-means parts ---------------------------------------------------------------------------


def assert_same_up_to_permutation(found, expected, atol):
    distances = torch.cdist(expected, found)
    matched = distances.argmin(dim=1)
    assert sorted(matched.tolist()) == list(range(len(expected)))  # a bijection
    assert distances.min(dim=1).values.max() < atol


def planted_clusters(spherical=False, seed=6):
    generator = torch.Generator().manual_seed(seed)
    centres = 10 * torch.eye(4, 5)
    labels = torch.arange(4).repeat_interleave(50)
    points = centres[labels] + 0.1 * torch.randn(200, 5, generator=generator)
    if spherical:  # same directions, lengths from 0.5 to 5
        points = points * (0.5 + 4.5 * torch.rand(200, 1, generator=generator))
    shuffle = torch.randperm(200, generator=generator)
    return points[shuffle], centres


def test_kmeans_recovers_planted_clusters():
    points, centres = planted_clusters()
    found = kmeans(points, 4, generator=torch.Generator().manual_seed(0))
    assert_same_up_to_permutation(found, centres, atol=0.1)


def test_spherical_kmeans_recovers_planted_directions():
    points, centres = planted_clusters(spherical=True)
    found = kmeans(points, 4, generator=torch.Generator().manual_seed(0), spherical=True)
    torch.testing.assert_close(found.norm(dim=1), torch.ones(4))
    assert_same_up_to_permutation(found, centres / 10, atol=0.02)


def test_kmeans_is_reproducible_from_its_seed():
    points = torch.randn(300, 3, generator=torch.Generator().manual_seed(7))
    first, again = (kmeans(points, 5, generator=torch.Generator().manual_seed(1)) for _ in range(2))
    torch.testing.assert_close(first, again, rtol=0, atol=0)


def striped_activations():
    """Three vertical stripes of an ``4 x 6`` grid, each with its own fibre (plus noise), in 3 samples."""
    generator = torch.Generator().manual_seed(8)
    stripe = torch.arange(6) // 2  # columns 0-1, 2-3, 4-5
    fibres = 5 * torch.eye(3, 4)[stripe]  # (W, C)
    Z = fibres.T[None, :, None, :].expand(3, 4, 4, 6) + 0.05 * torch.randn(3, 4, 4, 6, generator=generator)
    return Z, torch.nn.functional.one_hot(stripe, 3).T[:, None, :].expand(3, 4, 6).float()  # (K, H, W)


def test_cluster_masks_are_one_hot_and_find_the_stripes():
    Z, stripes = striped_activations()
    centroids = kmeans(channel_fibres(Z), 3, generator=torch.Generator().manual_seed(0))
    masks = cluster_masks(Z, centroids)
    assert masks.shape == (3, 3, 4, 6)
    assert set(masks.unique().tolist()) <= {0.0, 1.0}
    torch.testing.assert_close(masks.sum(dim=1), torch.ones(3, 4, 6))
    for stripe in stripes:  # each stripe is exactly one cluster, in every sample
        assert any(torch.equal(masks[:, k], stripe.expand(3, 4, 6)) for k in range(3))


def test_cluster_parts_are_frequencies_usable_as_panda_parts():
    Z, _ = striped_activations()
    masks = cluster_masks(Z, kmeans(channel_fibres(Z), 3, generator=torch.Generator().manual_seed(0)))
    masks[0] = masks[0].roll(1, dims=0)  # sample 0 has the other clusters' order
    parts = cluster_parts(masks)
    assert parts.shape == (24, 3) and parts.min() >= 0
    torch.testing.assert_close(parts.sum(dim=1), torch.ones(24))
    torch.testing.assert_close(parts, masks.mean(0).flatten(1).T)
    # Global or per-sample, the clusters edit as PandA's parts do.
    A = torch.eye(4)
    global_edit = local_edit(Z, A, [(part_mask(parts, 0, 4, 6), 1, 2.0)])
    own_edit = local_edit(Z, A, [(masks[:, 0], 1, 2.0)])
    torch.testing.assert_close(own_edit - Z, 2.0 * A[:, 1, None, None] * masks[:, 0, None])
    assert global_edit.shape == own_edit.shape == Z.shape


def test_kmeans_and_masks_reject_bad_input():
    points, _ = planted_clusters()
    Z, _ = striped_activations()
    with pytest.raises(ValueError, match=r"num_clusters=201 must be an integer from 1 to 200 \(there are M = 200 points"):
        kmeans(points, 201)
    with pytest.raises(ValueError, match="iterations=0 must be a positive integer"):
        kmeans(points, 2, iterations=0)
    with pytest.raises(ValueError, match=r"points has shape \(200,\); it must be \(M, C\)"):
        kmeans(points[:, 0], 2)
    with pytest.raises(ValueError, match=r"centroids has shape \(3, 5\); it must be \(K, C\) with the activations' C = 4"):
        cluster_masks(Z, torch.zeros(3, 5))
    with pytest.raises(ValueError, match=r"Z has shape \(4, 4, 6\); it must be activations \(N, C, H, W\)"):
        cluster_masks(Z[0], torch.zeros(3, 4))
    with pytest.raises(ValueError, match=r"masks has shape \(3, 4, 6\); it must be \(N, K, H, W\)"):
        cluster_parts(Z[:, 0])


# -- editing along a latent direction --------------------------------------------------------


def test_edit_latents_moves_each_latent_along_the_direction():
    latents = torch.randn(4, 100, 1, 1, generator=torch.Generator().manual_seed(9))
    direction = torch.zeros(100)
    direction[7] = 1
    edited = edit_latents(latents, direction, -3.0)
    assert edited.shape == latents.shape
    expected = latents.clone()
    expected[:, 7] -= 3.0
    torch.testing.assert_close(edited, expected)
    torch.testing.assert_close(edit_latents(latents, direction, 0.0), latents)


@pytest.mark.parametrize(
    ("direction", "alpha", "message"),
    [
        (torch.zeros(99), 1.0, r"direction has 99 entries \(shape \(99,\)\); one latent \(100, 1, 1\) has 100"),
        (torch.zeros(100), float("nan"), "alpha=nan must be a finite number"),
        (torch.zeros(100), "1", "alpha='1' must be a finite number"),
    ],
)
def test_edit_latents_rejects_bad_input(direction, alpha, message):
    with pytest.raises(ValueError, match=message):
        edit_latents(torch.zeros(2, 100, 1, 1), direction, alpha)


def test_every_sefa_direction_edits_a_dcgan_shaped_latent(weight):
    latents = torch.zeros(2, 6, 1, 1, dtype=torch.float64)
    for direction, alpha in itertools.product(sefa_directions(weight, 6), (1.0, -2.0)):
        moved = edit_latents(latents, direction, alpha).flatten(1)
        torch.testing.assert_close(moved.norm(dim=1), torch.full((2,), abs(alpha), dtype=torch.float64))
