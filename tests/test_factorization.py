"""The closed-form loss and gradients against autograd, and the HOSVD initialisation."""

from __future__ import annotations

import pytest
import torch

from panda_lightning.functional.factorization import (
    appearance_gradient,
    channel_scatter,
    gram_loss_and_parts_gradient,
    gram_reconstruction_loss,
    positions_gram,
    unfold,
    hosvd_appearances,
    loss_and_appearance_gradient,
    loss_and_parts_gradient,
    orthogonality_error,
    parts_gradient,
    parts_scale_terms,
    project_nonnegative_,
    random_parts,
    reconstruction_loss,
    scaled_initial_parts,
    sparsity,
)

SHAPES = [  # N, C, S, R_C, R_S
    (3, 5, 7, 5, 2),
    (4, 6, 9, 3, 1),  # R_C < C and a single part
    (2, 8, 16, 8, 4),
    (1, 10, 6, 2, 3),
    (5, 3, 20, 1, 20),  # R_S = S, R_C = 1
    (16, 4, 4, 3, 2),  # N * R_S > R_C: Gram matrix first
]


def _random(N, C, S, R_C, R_S, seed=0):
    generator = torch.Generator().manual_seed(seed)
    Z = torch.randn(N, C, S, generator=generator, dtype=torch.float64)
    A = torch.randn(C, R_C, generator=generator, dtype=torch.float64)
    P = torch.rand(S, R_S, generator=generator, dtype=torch.float64)
    return Z, A, P


def _autograd(Z, A, P):
    A = A.clone().requires_grad_(True)
    P = P.clone().requires_grad_(True)
    reconstruction = A @ (A.T @ Z @ P) @ P.T  # Eq. 3 evaluated directly
    loss = (Z - reconstruction).square().sum()
    loss.backward()
    return loss.detach(), A.grad, P.grad


@pytest.mark.parametrize("shape", SHAPES)
def test_loss_and_gradients_match_autograd_in_float64(shape):
    Z, A, P = _random(*shape)
    loss, grad_A, grad_P = _autograd(Z, A, P)

    loss_p, ours_P = loss_and_parts_gradient(Z, A, P)
    loss_a, ours_A = loss_and_appearance_gradient(Z, A, P)

    torch.testing.assert_close(reconstruction_loss(Z, A, P), loss, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(loss_p, loss, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(loss_a, loss, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(ours_P, grad_P, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(ours_A, grad_A, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(parts_gradient(Z, A, P), grad_P, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(appearance_gradient(Z, A, P), grad_A, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("parts_rank", [3, 20])  # both orders of the Z P product
def test_a_full_orthonormal_basis_drops_out_of_the_loss_and_parts_gradient(parts_rank):
    Z, _, P = _random(4, 6, 24, 6, parts_rank, seed=2)
    A, _ = torch.linalg.qr(torch.randn(6, 6, generator=torch.Generator().manual_seed(3), dtype=torch.float64))
    loss, _, grad_P = _autograd(Z, A, P)
    without_A = loss_and_parts_gradient(Z, None, P)
    torch.testing.assert_close(without_A[0], loss, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(without_A[1], grad_P, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(reconstruction_loss(Z, None, P), loss, rtol=1e-10, atol=1e-10)
    # ... and only a full one: with R_C < C the basis matters.
    assert not torch.allclose(reconstruction_loss(Z, A[:, :4], P), loss)


@pytest.mark.parametrize("shape", [(4, 6, 24, 6, 3), (2, 3, 10, 3, 10), (1, 16, 5, 16, 1)])
def test_the_positions_gram_matrix_gives_a_full_basis_loss_and_parts_gradient(shape):
    Z, _, P = _random(*shape, seed=4)
    C = Z.shape[1]
    A, _ = torch.linalg.qr(torch.randn(C, C, generator=torch.Generator().manual_seed(5), dtype=torch.float64))
    loss, _, grad_P = _autograd(Z, A, P)
    G = positions_gram(Z)
    torch.testing.assert_close(G, sum(z.T @ z for z in Z), rtol=1e-12, atol=1e-12)
    gram_loss, gram_grad_P = gram_loss_and_parts_gradient(G, P)
    torch.testing.assert_close(gram_loss, loss, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(gram_grad_P, grad_P, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(gram_reconstruction_loss(G, P, Z.square().sum()), loss, rtol=1e-10, atol=1e-10)
    # The Gram matrices of two halves of a batch add up to the batch's, as on two devices.
    torch.testing.assert_close(positions_gram(Z[:1]) + positions_gram(Z[1:]), G)


def test_unfold_is_the_mode_3_unfolding_in_float32():
    activations = torch.arange(2 * 3 * 4 * 5, dtype=torch.float64).view(2, 3, 4, 5)
    Z = unfold(activations)
    assert Z.shape == (2, 3, 20) and Z.dtype == torch.float32
    assert Z[1, 2, 4 * 5 - 1] == activations[1, 2, 3, 4] and Z[0, 1, 6] == activations[0, 1, 1, 1]


def test_paper_equations_4_and_5_agree_with_the_factored_form():
    # The paper's gradients, left to right, with Pbar = P P^T and Abar = A A^T.
    Z, A, P = _random(3, 5, 7, 4, 2, seed=1)
    Pbar, Abar = P @ P.T, A @ A.T
    eq4 = 2 * sum(Pbar @ z.T @ Abar @ Abar @ z @ P + z.T @ Abar @ Abar @ z @ Pbar @ P - 2 * z.T @ Abar @ z @ P for z in Z)
    eq5 = 2 * sum(Abar @ z @ Pbar @ Pbar @ z.T @ A + z @ Pbar @ Pbar @ z.T @ Abar @ A - 2 * z @ Pbar @ z.T @ A for z in Z)
    torch.testing.assert_close(parts_gradient(Z, A, P), eq4)
    torch.testing.assert_close(appearance_gradient(Z, A, P), eq5)


def test_sums_over_samples_split_exactly():
    # What devices do: each sums its own samples, and the sums add up.
    Z, A, P = _random(6, 5, 9, 3, 2)
    whole = loss_and_parts_gradient(Z, A, P)
    halves = [loss_and_parts_gradient(z, A, P) for z in (Z[:2], Z[2:])]
    torch.testing.assert_close(halves[0][0] + halves[1][0], whole[0])
    torch.testing.assert_close(halves[0][1] + halves[1][1], whole[1])
    torch.testing.assert_close(channel_scatter(Z[:2]) + channel_scatter(Z[2:]), channel_scatter(Z))


def test_channel_scatter_is_the_mode_2_gram_matrix():
    Z, _, _ = _random(4, 5, 7, 1, 1)
    expected = sum(z @ z.T for z in Z)
    torch.testing.assert_close(channel_scatter(Z), expected)


def test_hosvd_gives_the_leading_orthonormal_eigenvectors():
    Z, _, _ = _random(8, 6, 10, 1, 1)
    scatter = channel_scatter(Z)
    A = hosvd_appearances(scatter, 4)
    assert A.shape == (6, 4)
    torch.testing.assert_close(A.T @ A, torch.eye(4, dtype=A.dtype))
    eigenvalues = torch.linalg.eigvalsh(scatter).flip(0)
    torch.testing.assert_close(torch.diagonal(A.T @ scatter @ A), eigenvalues[:4])
    # Each column's largest entry is positive, so no sign flips between solvers or devices.
    assert (A.gather(0, A.abs().argmax(0, keepdim=True)) > 0).all()


def test_projection_orthogonality_and_sparsity():
    P = torch.tensor([[1.0, -2.0], [0.0, 3.0]])
    project_nonnegative_(P)
    assert P.tolist() == [[1.0, 0.0], [0.0, 3.0]]
    assert sparsity(P).item() == 0.5
    assert orthogonality_error(torch.eye(3)[:, :2]).item() == 0.0
    assert orthogonality_error(2 * torch.eye(3)[:, :2]).item() == pytest.approx(18**0.5)


def test_random_parts_are_uniform_on_the_given_interval_and_seeded():
    P = random_parts(100, 3, torch.Generator().manual_seed(0))
    assert P.shape == (100, 3) and P.min() >= 0 and P.max() <= 0.01 and P.max() > 0.009
    torch.testing.assert_close(P, random_parts(100, 3, torch.Generator().manual_seed(0)))


def test_the_error_along_the_parts_is_the_quartic_of_the_scale_terms_and_an_overshoot_is_scaled_back():
    generator = torch.Generator().manual_seed(0)
    Z = torch.rand(3, 4, 400, generator=generator, dtype=torch.float64)  # non-negative, as after a ReLU
    P = random_parts(400, 5, generator).double() * 20  # as large as U(0, 0.01) parts at far more positions
    a, b = parts_scale_terms(Z, P)
    energy, identity = Z.square().sum(), torch.eye(4, dtype=torch.float64)
    for s in (0.5, 1.0, 3.0):  # against Eq. 3 with the full basis, evaluated directly
        torch.testing.assert_close(reconstruction_loss(Z, identity, s * P), energy - 2 * s**2 * a + s**4 * b, rtol=1e-10, atol=0)
    assert b >= 2 * a  # these parts fit worse than none...
    scaled = scaled_initial_parts(P, torch.stack([a, b]))
    error = lambda parts: (reconstruction_loss(Z, identity, parts) / energy).item()  # noqa: E731
    assert error(P) > 1 > error(scaled)  # ...scaled back, better than none
    assert error(scaled) < min(error(scaled * 0.9), error(scaled * 1.1))  # the least error along P
    few = P[:40] / 10  # small parts that fit: as they are
    assert scaled_initial_parts(few, parts_scale_terms(Z[..., :40], few)) is few

