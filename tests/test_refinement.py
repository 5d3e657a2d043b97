"""Parts refinement (Eq. 10-12, Alg. 2) against dense evaluations, autograd and hand-built graphs."""

from __future__ import annotations

import pytest
import torch

from panda_lightning.functional.factorization import loss_and_parts_gradient, project_nonnegative_
from panda_lightning.functional.refinement import (
    graph_affinity,
    low_rank_refinement_loss_and_gradient,
    mutual_knn_affinity,
    mutual_knn_graph,
    refine_parts,
    refinement_loss_and_gradient,
)

pytestmark = pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta state")

SHAPES = [  # R_C, S, R_S
    (4, 9, 2),
    (6, 5, 5),  # R_S = S
    (1, 12, 3),  # rank-one affinity
    (10, 16, 1),  # a single part
]


def _random(R_C, S, R_S, seed=0):
    generator = torch.Generator().manual_seed(seed)
    X = torch.randn(R_C, S, generator=generator, dtype=torch.float64)
    P = torch.rand(S, R_S, generator=generator, dtype=torch.float64)
    return X, P


def _eq10(W, P):
    """Eq. 10 as printed."""
    return -2 * torch.trace(P.T @ W @ P) + torch.trace(P @ P.T @ W @ P @ P.T)


def _eq11(W, P):
    """Eq. 11 as printed."""
    return 2 * P @ P.T @ W @ P + 2 * W @ P @ P.T @ P - 4 * W @ P


def _autograd(W, P):
    P = P.clone().requires_grad_(True)
    loss = _eq10(W, P)
    loss.backward()
    return loss.detach(), P.grad


def _activations(N=3, C=6, S=20, R_C=4, R_S=3, seed=0):
    generator = torch.Generator().manual_seed(seed)
    Z = torch.randn(N, C, S, generator=generator, dtype=torch.float64).relu()
    A = torch.linalg.qr(torch.randn(C, R_C, generator=generator, dtype=torch.float64))[0]
    P = torch.rand(S, R_S, generator=generator, dtype=torch.float64)
    return Z, A, P / P.norm(dim=0)


def _fitted_like(N=2, C=6, S=20, R_C=4, R_S=3, seed=0):
    """Activations with appearances as a fit may leave them: neither orthogonal nor of unit norm."""
    Z, _, P = _activations(N, C, S, R_C, R_S, seed)
    generator = torch.Generator().manual_seed(seed + 100)
    A = torch.randn(C, R_C, generator=generator, dtype=torch.float64) * torch.linspace(0.5, 1.5, R_C, dtype=torch.float64)
    assert (A.T @ A - torch.eye(R_C, dtype=A.dtype)).norm() > 1
    return Z, A, P


def _parts_subproblem(z, A, P):
    """The fitted model's loss for one sample as a function of its parts, minus ||Z_i||^2."""
    return (z - A @ A.T @ z @ P @ P.T).square().sum() - z.square().sum()


@pytest.mark.parametrize("shape", SHAPES)
def test_low_rank_gradient_equals_eq11_and_autograd_of_eq10(shape):
    X, P = _random(*shape)
    W = X.T @ X
    loss, gradient = _autograd(W, P)
    torch.testing.assert_close(_eq11(W, P), gradient, rtol=1e-10, atol=1e-10)

    low_rank_loss, low_rank_gradient = low_rank_refinement_loss_and_gradient(X, P)
    torch.testing.assert_close(low_rank_loss, loss, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(low_rank_gradient, gradient, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("shape", SHAPES)
def test_affinity_gradient_equals_autograd_for_dense_and_sparse_w(shape):
    X, P = _random(*shape, seed=1)
    W = X.T @ X
    W[0, -1] = W[-1, 0] = 0.0  # a severed edge: any symmetric W, not only a Gram matrix
    loss, gradient = _autograd(W, P)
    for affinity in (W, W.to_sparse_csr(), W.to_sparse()):
        ours_loss, ours_gradient = refinement_loss_and_gradient(affinity, P)
        torch.testing.assert_close(ours_loss, loss, rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(ours_gradient, gradient, rtol=1e-10, atol=1e-10)


def test_batched_losses_and_gradients_are_per_sample():
    X = torch.stack([_random(4, 9, 2, seed=seed)[0] for seed in range(3)])
    P = torch.stack([_random(4, 9, 2, seed=seed)[1] for seed in range(3)])
    losses, gradients = low_rank_refinement_loss_and_gradient(X, P)
    dense_losses, dense_gradients = refinement_loss_and_gradient(X.mT @ X, P)
    for x, p, loss, gradient, dense_loss, dense_gradient in zip(X, P, losses, gradients, dense_losses, dense_gradients):
        expected_loss, expected_gradient = _autograd(x.T @ x, p)
        torch.testing.assert_close(loss, expected_loss, rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(dense_loss, expected_loss, rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(gradient, expected_gradient, rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(dense_gradient, expected_gradient, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("R_C", [4, 6])
def test_refinement_objective_is_the_fitted_models_parts_subproblem_for_any_appearances(R_C):
    Z, A, P = _fitted_like(N=1, R_C=R_C)
    z = Z[0]
    X = A.T @ z
    parts = P.clone().requires_grad_(True)
    expected = _parts_subproblem(z, A, parts)
    expected.backward()
    loss, gradient = low_rank_refinement_loss_and_gradient(X, P, A.T @ A)
    torch.testing.assert_close(loss, expected.detach(), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(gradient, parts.grad, rtol=1e-10, atol=1e-10)
    # The same objective as the fit's parts step (Eq. 3-4) on this one sample.
    fit_loss, fit_gradient = loss_and_parts_gradient(Z, A, P)
    torch.testing.assert_close(loss + z.square().sum(), fit_loss, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(gradient, fit_gradient, rtol=1e-10, atol=1e-10)
    # Dense W and W' give the same; the paper's Eq. 10 (W' = W) does not, for this A.
    dense = refinement_loss_and_gradient(X.T @ X, P, X.T @ A.T @ A @ X)
    torch.testing.assert_close(dense[1], gradient, rtol=1e-10, atol=1e-10)
    assert not torch.allclose(refinement_loss_and_gradient(X.T @ X, P)[1], gradient, rtol=0.1)
    _, history = refine_parts(z, A, P, steps=3, return_losses=True)
    torch.testing.assert_close(history[0], expected.detach(), rtol=1e-10, atol=1e-10)


def test_refinement_leaves_parts_fitted_to_the_same_sample_where_they_are():
    # Parts fitted by the fit's own gradient (Eq. 4) to a batch that is one sample repeated, with
    # appearances that are not orthonormal: refinement on that sample has nothing to adapt.
    Z, A, P = _fitted_like(N=1, S=16)
    batch = Z.expand(4, -1, -1)
    X = A.T @ Z[0]
    norm_W, norm_G = torch.linalg.matrix_norm(X, ord=2) ** 2, torch.linalg.matrix_norm(A.T @ A, ord=2)
    fitted = P.clone()
    for _ in range(12_000):  # projected gradient with 1 / (a Lipschitz bound at the current parts)
        step = 1 / (4 * norm_W + 12 * norm_G * norm_W * torch.linalg.matrix_norm(fitted, ord=2) ** 2)
        previous, fitted = fitted, project_nonnegative_(fitted - step * loss_and_parts_gradient(batch, A, fitted)[1] / 4)
    assert (fitted - previous).norm() < 1e-12 * fitted.norm()  # converged
    for affinity in ("full", "mutual_knn"):
        refined = refine_parts(Z[0], A, fitted, affinity=affinity, num_neighbours=15, steps=10)
        assert (refined - fitted).norm() < 1e-6 * fitted.norm()
    # With the paper's W' = W, exact only for orthonormal A, the same parts would move.
    moved = project_nonnegative_(fitted - step * refinement_loss_and_gradient(X.T @ X, fitted)[1])
    assert (moved - fitted).norm() > 1e-2 * fitted.norm()


def test_mutual_knn_affinity_weighs_the_graphs_edges_by_the_appearances_gram():
    _, A, _ = _fitted_like()
    X, _ = _random(4, 15, 1, seed=4)
    edges = mutual_knn_graph(X, num_neighbours=4)
    graph = torch.zeros(15, 15, dtype=torch.float64)
    graph[edges[0], edges[1]] = 1
    assert torch.equal(graph, graph.T) and graph.diagonal().eq(1).all() and 15 < graph.sum() < 15 * 5
    G = A.T @ A
    torch.testing.assert_close(graph_affinity(X, edges, G).to_dense(), graph * (X.T @ G @ X), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(mutual_knn_affinity(X, 4, appearances_gram=G).to_dense(), graph * (X.T @ G @ X))


@pytest.mark.parametrize("chunk_size", [1, 3, 100])
def test_mutual_knn_with_all_other_fibres_as_neighbours_is_the_full_gram_matrix(chunk_size):
    X, _ = _random(5, 11, 2, seed=2)
    affinity = mutual_knn_affinity(X, num_neighbours=10, chunk_size=chunk_size)
    assert affinity.layout == torch.sparse_csr
    torch.testing.assert_close(affinity.to_dense(), X.T @ X, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("orthonormal", [True, False])
def test_refinement_with_all_other_fibres_as_neighbours_equals_the_full_refinement(orthonormal):
    Z, A, P = _activations(N=2, S=12) if orthonormal else _fitted_like(N=2, S=12)
    full, full_losses = refine_parts(Z, A, P, affinity="full", steps=30, return_losses=True)
    knn, knn_losses = refine_parts(Z, A, P, affinity="mutual_knn", num_neighbours=11, steps=30, return_losses=True)
    torch.testing.assert_close(knn, full, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(knn_losses, full_losses, rtol=1e-9, atol=1e-9)
    assert not torch.equal(full, P.expand_as(full))  # the refinement did move the parts


# Points on a line at 1, 2, 4, 8, 9 (fibres of one channel); nearest neighbours worked out by hand:
#   k = 1: 0->1, 1->0, 2->1, 3->4, 4->3                         mutual: {0, 1}, {3, 4}
#   k = 2: 0->{1,2}, 1->{0,2}, 2->{1,0}, 3->{4,2}, 4->{3,2}     mutual: {0, 1}, {0, 2}, {1, 2}, {3, 4}
@pytest.mark.parametrize(
    ("num_neighbours", "edges"),
    [(1, [(0, 1), (3, 4)]), (2, [(0, 1), (0, 2), (1, 2), (3, 4)])],
)
def test_mutual_knn_keeps_exactly_the_mutual_pairs_on_a_line(num_neighbours, edges):
    positions = torch.tensor([[1.0, 2.0, 4.0, 8.0, 9.0]], dtype=torch.float64)
    expected = torch.diag(positions[0] ** 2)  # the diagonal is always kept
    for j, k in edges:
        expected[j, k] = expected[k, j] = positions[0, j] * positions[0, k]
    affinity = mutual_knn_affinity(positions, num_neighbours=num_neighbours)
    torch.testing.assert_close(affinity.to_dense(), expected, rtol=0, atol=0)


def test_chunked_construction_gives_the_same_graph_for_any_chunk_size():
    X, _ = _random(3, 50, 1, seed=3)
    whole = mutual_knn_affinity(X, num_neighbours=6, chunk_size=50)
    assert 50 < whole.values().numel() < 50 * 7  # neither only the diagonal nor every kNN edge
    torch.testing.assert_close(whole.to_dense(), whole.to_dense().T, rtol=0, atol=1e-12)
    for chunk_size in (1, 7, 16, 1000):
        chunked = mutual_knn_affinity(X, num_neighbours=6, chunk_size=chunk_size)
        assert torch.equal(chunked.crow_indices(), whole.crow_indices())
        assert torch.equal(chunked.col_indices(), whole.col_indices())
        torch.testing.assert_close(chunked.values(), whole.values(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("affinity", ["full", "mutual_knn"])
def test_refined_parts_are_nonnegative_and_lower_eq10_from_the_global_parts(affinity):
    Z, A, P = _activations(N=3, S=20)
    parts, losses = refine_parts(Z, A, P, affinity=affinity, num_neighbours=4, steps=50, return_losses=True)
    assert parts.shape == (3, 20, 3)
    assert (parts >= 0).all()
    for i, z in enumerate(Z):
        X = A.T @ z
        W = X.T @ X if affinity == "full" else mutual_knn_affinity(X, num_neighbours=4).to_dense()
        torch.testing.assert_close(losses[0, i], _eq10(W, P))  # the history is Eq. 10, independently
        torch.testing.assert_close(losses[-1, i], _eq10(W, parts[i]))
        assert _eq10(W, parts[i]) < _eq10(W, P) - 1e-3 * _eq10(W, P).abs()
    assert (losses[1:] <= losses[:-1] + 1e-12 * losses[:-1].abs()).all()  # never rises


def test_refinement_finds_a_samples_own_shifted_parts():
    # Global parts: four vertical stripes, two columns wide. The sample's own parts: the same
    # stripes shifted by one column, each with an appearance of its own.
    generator = torch.Generator().manual_seed(0)
    columns = torch.arange(6 * 8) % 8

    def stripes(shift):
        parts = torch.nn.functional.one_hot((columns + shift) % 8 * 4 // 8, 4).double()
        return parts / parts.norm(dim=0)

    A = torch.linalg.qr(torch.randn(10, 10, generator=generator, dtype=torch.float64))[0]
    appearances = 3 * torch.randn(10, 4, generator=generator, dtype=torch.float64)
    own = stripes(1)
    Z = appearances @ own.T + 0.05 * torch.randn(10, 48, generator=generator, dtype=torch.float64)
    parts = refine_parts(Z, A, stripes(0), affinity="full", steps=300)

    def best_cosines(candidates):  # for each of the sample's parts, the closest candidate part
        return (torch.nn.functional.normalize(candidates, dim=0).T @ own).max(0).values

    torch.testing.assert_close(best_cosines(stripes(0)), torch.full((4,), 0.5, dtype=torch.float64))
    assert (best_cosines(parts) > 0.99).all()


@pytest.mark.parametrize("affinity", ["full", "mutual_knn"])
def test_too_long_a_step_is_halved_until_eq10_does_not_rise_and_no_part_is_emptied(affinity):
    Z, A, P = _activations(N=2, S=16)
    # Eq. 10 is positive at these overlapping parts: projecting every part to zero would lower it.
    assert (refine_parts(Z, A, P, affinity=affinity, num_neighbours=3, steps=0, return_losses=True)[1] > 0).all()
    parts, losses = refine_parts(Z, A, P, affinity=affinity, num_neighbours=3, steps=30, lr=1e3, return_losses=True)
    assert (losses[1:] <= losses[:-1] + 1e-12 * losses[:-1].abs()).all()
    assert (losses[-1] < 0).all()
    assert (parts.norm(dim=1) > 0).all()


@pytest.mark.parametrize("affinity", ["full", "mutual_knn"])
def test_a_batch_equals_one_sample_at_a_time(affinity):
    # A long first step (lr=64), so that samples halve their steps at different times.
    Z, A, P = _activations(N=4, S=16)
    options = {"affinity": affinity, "num_neighbours": 3, "steps": 40, "lr": 64.0, "return_losses": True}
    batch, batch_losses = refine_parts(Z, A, P, **options)
    for i, z in enumerate(Z):
        single, single_losses = refine_parts(z, A, P, **options)
        assert single.shape == P.shape and single_losses.shape == (41,)
        torch.testing.assert_close(batch[i], single, rtol=1e-9, atol=1e-12)
        torch.testing.assert_close(batch_losses[:, i], single_losses, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("affinity", ["full", "mutual_knn"])
def test_step_size_does_not_depend_on_the_scale_of_activations_or_parts(affinity):
    # Layers differ by orders of magnitude; the default lr must work on all of them alike.
    Z, A, P = _activations(N=2, S=16)
    parts = refine_parts(Z, A, P, affinity=affinity, num_neighbours=3, steps=40)
    scaled = refine_parts(1e4 * Z, A, P, affinity=affinity, num_neighbours=3, steps=40)
    torch.testing.assert_close(scaled, parts, rtol=1e-8, atol=1e-10)
    # Parts far from unit scale (the U(0, 0.01) initialisation, or 100 times too large) still
    # descend without any part collapsing to zero, from which it could never come back.
    for start in (0.01 * P, 100 * P):
        parts, losses = refine_parts(Z, A, start, affinity=affinity, num_neighbours=3, return_losses=True)
        assert (losses[-1] < losses[0]).all()
        assert (parts.norm(dim=1) > 0).all()


def test_float32_refinement_matches_float64():
    Z, A, P = _activations(N=2, S=16)
    reference = refine_parts(Z, A, P, steps=20)
    single = refine_parts(Z.float(), A.float(), P.float(), steps=20)
    assert single.dtype == torch.float32
    torch.testing.assert_close(single.double(), reference, rtol=1e-3, atol=1e-4)


def _valid():
    Z, A, P = _activations(N=2, C=6, S=9, R_C=4, R_S=2)
    return {"Z": Z, "A": A, "P": P}


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"affinity": "knn"}, r"affinity='knn' must be one of 'full', 'mutual_knn'"),
        ({"Z": torch.zeros(6, 9, 1, 1)}, r"Z must be one sample \(C, S\) or a batch \(N, C, S\).*got shape \(6, 9, 1, 1\)"),
        ({"P": torch.zeros(2, 9, 2)}, r"A must be \(C, R_C\) and P \(S, R_S\); got shapes \(6, 4\) and \(2, 9, 2\)"),
        ({"Z": torch.zeros(2, 5, 9)}, r"Z has C = 5 channels but A has 6 rows.*\(C, S\) = \(6, 9\) per sample"),
        ({"Z": torch.zeros(5, 6, 10)}, r"Z has S = 10 spatial positions but P has 9 rows.*\(C, S\) = \(6, 9\)"),
        ({"affinity": "mutual_knn", "num_neighbours": 0}, r"num_neighbours=0 must be an integer from 1 to 8 \(S - 1, with S = 9 positions"),
        ({"affinity": "mutual_knn", "num_neighbours": 9}, r"num_neighbours=9 must be an integer from 1 to 8 \(S - 1"),
        ({"affinity": "mutual_knn", "num_neighbours": 2.0}, r"num_neighbours=2.0 must be an integer"),
        ({"affinity": "mutual_knn", "num_neighbours": 3, "chunk_size": 0}, r"chunk_size=0 must be a positive integer"),
        ({"steps": -1}, r"steps=-1 must be a non-negative integer"),
        ({"max_halvings": -1}, r"max_halvings=-1 must be a non-negative integer"),
        ({"lr": 0.0}, r"lr=0.0 must be a positive finite number"),
        ({"lr": float("nan")}, r"lr=nan must be a positive finite number"),
    ],
)
def test_refine_parts_rejects_bad_input_saying_what_was_expected(change, match):
    with pytest.raises(ValueError, match=match):
        refine_parts(**{**_valid(), **change})


def test_mutual_knn_affinity_rejects_a_batch_and_bad_neighbour_counts():
    X, _ = _random(3, 7, 1)
    with pytest.raises(ValueError, match=r"features must be one sample's X = A\^T Z_i, \(R_C, S\); got shape \(2, 3, 7\)"):
        mutual_knn_affinity(X.expand(2, 3, 7), num_neighbours=2)
    with pytest.raises(ValueError, match=r"num_neighbours=7 must be an integer from 1 to 6 \(S - 1, with S = 7"):
        mutual_knn_affinity(X, num_neighbours=7)


def test_loss_functions_reject_parts_that_do_not_fit():
    X, P = _random(3, 7, 2)
    with pytest.raises(ValueError, match=r"parts of shape \(6, 2\) do not fit the features of shape \(3, 7\): expected \(7, R_S\)"):
        low_rank_refinement_loss_and_gradient(X, P[:6])
    with pytest.raises(ValueError, match=r"parts of shape \(7, 2\) do not fit the affinity of shape \(2, 7, 7\): expected \(2, 7, R_S\)"):
        refinement_loss_and_gradient(torch.zeros(2, 7, 7, dtype=torch.float64), P)
