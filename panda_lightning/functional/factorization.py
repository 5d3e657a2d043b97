"""The PandA factorisation as pure functions on tensors (no Lightning here).

Notation follows the paper (Oldfield et al., TPAMI 2024, Sec. 3):

- ``Z: (N, C, S)``: N samples' mode-3 unfolded activations (channels x spatial, ``S = H * W``),
- ``A: (C, R_C)``: appearance factors, one appearance per column,
- ``P: (S, R_S)``: non-negative parts factors, one part per column,

and the model ``Z_i ~ A (A^T Z_i P) P^T`` (Eq. 1-3).

Everything returns *sums* over samples, never means, so that a sum over devices is exact
whatever each device's batch size. Nothing here forms an ``S x S`` or ``C x C`` product per
sample: with ``U_i = Z_i P`` and ``L_i = A^T U_i`` every quantity is a few passes of
``C * S * R_S`` per sample plus ``R x R`` work (see ``python -m benchmarks.speed.gradients``).
With a full orthonormal basis (``R_C = C``) the loss depends on a batch only through its
positions' Gram matrix ``sum_i Z_i^T Z_i`` (``S x S``, formed once per batch), and the
``gram_*`` functions evaluate it in ``O(S^2 R_S)``, whatever the batch.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from einops import rearrange
from torch import Tensor


class _Terms(NamedTuple):
    """Per-sample quantities shared by the loss and both gradients."""

    loss: Tensor  # scalar, Eq. 3 summed over samples
    projected: Tensor  # U_i = Z_i P, (N, C, R_S)
    coefficients: Tensor  # L_i = A^T Z_i P, (N, R_C, R_S)
    residual_coefficients: Tensor  # K_i = G_A L_i G_P - 2 L_i, (N, R_C, R_S)
    gram_weighted: Tensor  # M_i = G_A L_i, (N, R_C, R_S)


def _each(matrix: Tensor, X: Tensor) -> Tensor:
    """``matrix @ X_i`` for every sample of ``X: (N, K, R)``, as one ``(M, K) @ (K, N * R)``
    product (a broadcast batched product with a large ``matrix`` is several times slower)."""
    N, K, R = X.shape
    return (matrix @ X.transpose(0, 1).reshape(K, N * R)).view(-1, N, R).transpose(0, 1)


def _gram_times(A: Tensor, X: Tensor) -> Tensor:
    """``A^T A X`` for ``X: (N, R_C, R)``, in whichever order costs fewer FLOPs."""
    N, R_C, R = X.shape
    if N * R < R_C:  # two thin products beat forming the R_C x R_C Gram matrix
        return _each(A.T, _each(A, X))
    return _each(A.T @ A, X)


def _project(Z: Tensor, P: Tensor) -> Tensor:
    """``U_i = Z_i P`` for every sample, ``(N, C, R_S)``, as one product with the ``N * C`` rows.

    With fewer than 16 parts it is computed as ``(P^T Z^T)^T``: the same FLOPs, and with MKL on
    this project's CPU about twice as fast (1.1 ms against 2.0 ms at ``N * C = 8192``,
    ``S = 256``, 8 parts); with 16 or more the plain product is as fast or faster."""
    N, C, S = Z.shape
    flat = Z.reshape(N * C, S)
    U = (P.T @ flat.T).T if P.shape[1] < 16 else flat @ P
    return U.reshape(N, C, -1)


def _terms(Z: Tensor, A: Tensor | None, P: Tensor, sum_of_squares: Tensor | None) -> _Terms:
    # U_i = Z_i P and L_i = A^T U_i; the loss expands to
    #   sum_i ||Z_i||^2 - 2 ||L_i||^2 + tr(L_i^T G_A L_i G_P).
    # A = None: a full orthonormal basis, A A^T = I, so L_i = U_i up to a rotation the loss ignores.
    if sum_of_squares is None:
        sum_of_squares = Z.square().sum()
    U = _project(Z, P)
    L = U if A is None else _each(A.T, U)
    gram_parts = P.T @ P
    M = L if A is None else _gram_times(A, L)
    MG = M @ gram_parts
    loss = sum_of_squares - 2 * L.square().sum() + (MG * L).sum()
    return _Terms(loss=loss, projected=U, coefficients=L, residual_coefficients=MG - 2 * L, gram_weighted=M)


def reconstruction_loss(Z: Tensor, A: Tensor | None, P: Tensor, sum_of_squares: Tensor | None = None) -> Tensor:
    """Eq. 3 summed over samples: ``sum_i ||Z_i - A (A^T Z_i P) P^T||_F^2``.

    Args:
        Z: activations, ``(N, C, S)``.
        A: appearance factors, ``(C, R_C)``; ``None`` for a full orthonormal basis
            (``R_C = C``, ``A A^T = I``), which drops out of the loss.
        P: parts factors, ``(S, R_S)``.
        sum_of_squares: ``sum_i ||Z_i||^2`` when the caller has it already (a step evaluates
            the loss several times on one batch); computed otherwise.

    Returns:
        A scalar tensor. Computed as ``sum_i ||Z_i||^2 - 2 ||L_i||^2 + tr(L_i^T G_A L_i G_P)``
        with ``L_i = A^T Z_i P``: never forms the reconstruction itself.
    """
    return _terms(Z, A, P, sum_of_squares).loss


def loss_and_parts_gradient(
    Z: Tensor, A: Tensor | None, P: Tensor, sum_of_squares: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """Eq. 3 and its gradient with respect to the parts (Eq. 4), sharing one pass over ``Z``.

    ``grad_P = 2 [P sum_i L_i^T G_A L_i + sum_i Z_i^T A K_i]`` with ``L_i = A^T Z_i P`` and
    ``K_i = G_A L_i G_P - 2 L_i``: equal to the paper's Eq. 4 without its ``S x S`` products.

    Args:
        Z: ``(N, C, S)``; A: ``(C, R_C)``, or ``None`` for a full orthonormal basis;
            P: ``(S, R_S)``; sum_of_squares: as in :func:`reconstruction_loss`.

    Returns:
        ``(loss, grad_P)``: a scalar and an ``(S, R_S)`` tensor, both sums over samples.
    """
    terms = _terms(Z, A, P, sum_of_squares)
    L, K, M = terms.coefficients, terms.residual_coefficients, terms.gram_weighted
    N, C, S = Z.shape
    # sum_i Z_i^T (A K_i) as one (R_S x N*C) @ (N*C x S) product, transposed: with the
    # long N*C side inside, MKL runs this 6-7x faster than the (S x N*C) @ (N*C x R_S) form with
    # 8 parts, and as fast with 16 or 32 (measured on this project's CPU).
    AK = K if A is None else _each(A, K)
    data_term = (AK.reshape(N * C, -1).T @ Z.reshape(N * C, S)).T
    gram_term = P @ (L.transpose(1, 2) @ M).sum(0)
    return terms.loss, 2 * (gram_term + data_term)


def loss_and_appearance_gradient(
    Z: Tensor, A: Tensor, P: Tensor, sum_of_squares: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """Eq. 3 and its gradient with respect to the appearances (Eq. 5), in one pass over ``Z``.

    ``grad_A = 2 [A sum_i L_i G_P L_i^T + sum_i U_i K_i^T]`` with ``U_i = Z_i P``,
    ``L_i = A^T U_i`` and ``K_i = G_A L_i G_P - 2 L_i``: equal to the paper's Eq. 5 without
    its ``C x C`` and ``S x S`` products.

    Args:
        Z: ``(N, C, S)``; A: ``(C, R_C)``; P: ``(S, R_S)``; sum_of_squares: as in
            :func:`reconstruction_loss`.

    Returns:
        ``(loss, grad_A)``: a scalar and a ``(C, R_C)`` tensor, both sums over samples.
    """
    terms = _terms(Z, A, P, sum_of_squares)
    U, L, K = terms.projected, terms.coefficients, terms.residual_coefficients
    N, C, R_S = U.shape
    # sum_i U_i K_i^T as one (C x N*R_S) @ (N*R_S x R_C) product.
    data_term = U.transpose(0, 1).reshape(C, N * R_S) @ K.transpose(1, 2).reshape(N * R_S, -1)
    gram_parts = P.T @ P
    if N * R_S < A.shape[1]:  # sum_i (A L_i G_P) L_i^T: no R_C x R_C product with A
        weighted = (A @ (L @ gram_parts).transpose(0, 1).reshape(-1, N * R_S))
        gram_term = weighted @ L.transpose(1, 2).reshape(N * R_S, -1)
    else:
        gram_term = A @ (L @ gram_parts @ L.transpose(1, 2)).sum(0)
    return terms.loss, 2 * (gram_term + data_term)


class PositionsGram(NamedTuple):
    """A batch summarised for a full orthonormal basis: ``gram = sum_i Z_i^T Z_i``, ``(S, S)``,
    of this process's ``num_samples`` samples (see :func:`positions_gram`)."""

    gram: Tensor
    num_samples: int


def unfold(activations: Tensor) -> Tensor:
    """A layer's activations ``(N, C, H, W)`` as the paper's mode-3 unfoldings ``Z: (N, C, S)``
    (``S = H * W``), in float32: what every fit and use of the factors computes on."""
    return rearrange(activations.float(), "n c h w -> n c (h w)")


def positions_gram(Z: Tensor) -> Tensor:
    """``G = sum_i Z_i^T Z_i``, ``(S, S)``, of ``Z: (N, C, S)``.

    With ``R_C = C`` and ``A`` orthonormal, ``A A^T = I`` and Eq. 3 summed over the batch is
    ``tr(G) - 2 tr(P^T G P) + tr(P^T G P P^T P)``: ``G`` is all a P step needs from the batch
    (see :func:`gram_loss_and_parts_gradient`). One ``(S x N*C) @ (N*C x S)`` product.
    """
    flat = rearrange(Z, "n c s -> (n c) s")
    return flat.T @ flat


def _gram_terms(G: Tensor, P: Tensor, energy: Tensor | None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    GP = G @ P
    coefficients_gram = P.T @ GP  # H = P^T G P = sum_i L_i^T L_i, (R_S, R_S)
    gram_parts = P.T @ P
    energy = G.diagonal().sum() if energy is None else energy
    loss = energy - 2 * coefficients_gram.trace() + (coefficients_gram * gram_parts).sum()
    return loss, GP, coefficients_gram, gram_parts


def gram_reconstruction_loss(G: Tensor, P: Tensor, energy: Tensor | None = None) -> Tensor:
    """Eq. 3 summed over a batch with a full orthonormal basis (``R_C = C``), from its
    positions' Gram matrix: ``sum_i ||Z_i - Z_i P P^T||^2 = tr(G) - 2 tr(H) + tr(H P^T P)`` with
    ``H = P^T G P``.

    Args:
        G: ``sum_i Z_i^T Z_i``, ``(S, S)`` (:func:`positions_gram`); P: ``(S, R_S)``.
        energy: ``tr(G) = sum_i ||Z_i||^2`` when the caller has it already.

    Returns:
        A scalar: :func:`reconstruction_loss` with ``A=None`` on the batch, in ``O(S^2 R_S)``.
    """
    return _gram_terms(G, P, energy)[0]


def gram_loss_and_parts_gradient(G: Tensor, P: Tensor, energy: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """:func:`gram_reconstruction_loss` and its gradient with respect to the parts (Eq. 4 with
    ``A A^T = I``): ``grad_P = 2 [G P (P^T P - 2 I) + P H]`` with ``H = P^T G P``.

    Returns:
        ``(loss, grad_P)``: equal to :func:`loss_and_parts_gradient` with ``A=None`` on the
        batch whose Gram matrix ``G`` is.
    """
    loss, GP, coefficients_gram, gram_parts = _gram_terms(G, P, energy)
    return loss, 2 * (GP @ gram_parts - 2 * GP + P @ coefficients_gram)


def parts_gradient(Z: Tensor, A: Tensor, P: Tensor) -> Tensor:
    """Gradient of Eq. 3 with respect to ``P`` (Eq. 4), ``(S, R_S)``; see
    :func:`loss_and_parts_gradient`."""
    return loss_and_parts_gradient(Z, A, P)[1]


def appearance_gradient(Z: Tensor, A: Tensor, P: Tensor) -> Tensor:
    """Gradient of Eq. 3 with respect to ``A`` (Eq. 5), ``(C, R_C)``; see
    :func:`loss_and_appearance_gradient`."""
    return loss_and_appearance_gradient(Z, A, P)[1]


def channel_scatter(Z: Tensor) -> Tensor:
    """The channel scatter ``sum_i Z_i Z_i^T`` (``Z_(2) Z_(2)^T`` in Alg. 1), ``(C, C)``.

    A sum over samples, so it can be accumulated batch by batch (and device by device).
    """
    N, C, S = Z.shape
    flat = Z.transpose(0, 1).reshape(C, N * S)
    return flat @ flat.T


def hosvd_appearances(scatter: Tensor, rank: int) -> Tensor:
    """HOSVD initialisation of the appearances (Sec. 3.4, Alg. 1).

    Args:
        scatter: the channel scatter ``sum_i Z_i Z_i^T``, ``(C, C)``, symmetric PSD.
        rank: ``R_C``, at most ``C``.

    Returns:
        ``A: (C, R_C)``, the leading ``R_C`` eigenvectors of ``scatter`` (its left singular
        vectors), largest eigenvalue first. Each column's sign is fixed so that its entry of
        largest magnitude is positive, so the result does not depend on the eigensolver.
    """
    eigenvalues, eigenvectors = torch.linalg.eigh(scatter.double())
    leading = eigenvectors[:, eigenvalues.argsort(descending=True)[:rank]]
    return largest_entries_positive(leading.T).T.to(scatter.dtype)


def largest_entries_positive(vectors: Tensor) -> Tensor:
    """The rows of ``vectors: (K, D)``, each flipped so that its entry of largest magnitude is
    positive: a sign that does not depend on the eigensolver."""
    largest = vectors.gather(1, vectors.abs().argmax(dim=1, keepdim=True))
    return vectors * torch.where(largest < 0, -1.0, 1.0).to(vectors)


def random_parts(
    num_positions: int, rank: int, generator: torch.Generator | None = None, scale: float = 0.01
) -> Tensor:
    """Parts initialisation of Alg. 1: ``P ~ U(0, scale)``, ``(S, R_S)``."""
    return torch.rand(num_positions, rank, generator=generator, dtype=torch.float64).mul_(scale).float()


def parts_scale_terms(Z: Tensor, P: Tensor) -> Tensor:
    """``(a, b)`` such that, with the full appearance basis (``A A^T = I``), the objective of
    Eq. 3 at the parts ``s P`` is ``sum_i ||Z_i||^2 - 2 s^2 a + s^4 b``: ``a = sum_i ||Z_i P||^2``,
    ``b = sum_i tr(U_i^T U_i P^T P)`` with ``U_i = Z_i P``. ``Z: (N, C, S)``, ``P: (S, R_S)``;
    sums over samples, so they accumulate batch by batch and device by device."""
    U = Z @ P  # (N, C, R_S)
    return torch.stack([U.square().sum(), (U.transpose(1, 2) @ U).sum(dim=0).mul(P.T @ P).sum()])


def scaled_initial_parts(P: Tensor, terms: Tensor) -> Tensor:
    """``P`` if it fits better than no parts at all (``b < 2 a``: relative error below 1, of
    :func:`parts_scale_terms`); else ``P`` scaled by ``sqrt(a / b)``, the scale along ``P`` of the
    least error. A fixed-scale random ``P`` overshoots on layers of many positions (``P P^T``
    grows with ``S``), and a first projected step can then land on ``P = 0``, where the gradient
    in ``P`` vanishes and the fit never moves."""
    a, b = terms.double()
    return P if b < 2 * a else P * (a / b).sqrt().to(P.dtype)


def project_nonnegative_(P: Tensor) -> Tensor:
    """Projection onto ``P >= 0`` (the ``max{0, .}`` of Alg. 1), in place."""
    return P.clamp_(min=0)


def project_orthonormal_(A: Tensor) -> Tensor:
    """Projection onto column-orthonormal matrices (``A^T A = I``, Sec. 3.3), in place.

    The nearest such matrix in Frobenius norm is the polar factor ``U V^T`` of ``A = U S V^T``
    (the thin SVD), so a gradient step followed by this is projected gradient descent, as the
    ``max{0, .}`` is for the parts. ``A: (C, R_C)`` with ``R_C <= C``; computed in float64.
    """
    U, _, Vh = torch.linalg.svd(A.double(), full_matrices=False)
    return A.copy_(U @ Vh)


def reconstruct(Z: Tensor, A: Tensor, P: Tensor) -> Tensor:
    """The model's reconstruction ``A (A^T Z_i P) P^T`` of every sample (Eq. 1), ``(N, C, S)``.

    Costs as much as a loss evaluation and holds a copy of ``Z``; use it where an error must
    not suffer the cancellation of :func:`reconstruction_loss`'s expanded form near a perfect fit.
    """
    return _each(A, _each(A.T, _project(Z, P))) @ P.T


def orthogonality_error(factors: Tensor) -> Tensor:
    """``||F^T F - I||_F`` for ``F: (D, R)``: how far the columns are from orthonormal."""
    gram = factors.T @ factors
    return torch.linalg.matrix_norm(gram - torch.eye(gram.shape[0], dtype=gram.dtype, device=gram.device))


def sparsity(P: Tensor) -> Tensor:
    """Fraction of exactly-zero entries of ``P`` (the projection sets them)."""
    return (P == 0).float().mean()
