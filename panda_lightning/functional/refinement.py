"""Refining the global parts to each sample's own parts (Sec. 4.2-4.3, Alg. 2), as pure functions.

Notation follows the paper (Oldfield et al., TPAMI 2024) and :mod:`panda_lightning.functional.factorization`:

- ``Z: (N, C, S)`` or one sample's ``Z_i: (C, S)``: mode-3 unfolded activations,
- ``A: (C, R_C)``: appearance factors; ``X_i = A^T Z_i: (R_C, S)``, the ``S`` channel fibres in
  the appearance basis (here ``features``),
- ``P: (S, R_S)``: the global non-negative parts; ``P~_i: (S, R_S)``, sample ``i``'s refined parts,
- ``W_i: (S, S)``: an affinity between the fibres of sample ``i``.

Refinement solves, for each sample on its own, starting from ``P~_i = P``, the parts subproblem
of the fitted model, ``min_{P~ >= 0} ||Z_i - A A^T Z_i P~ P~^T||^2 - ||Z_i||^2``:

    L_G = -2 tr(P~^T W P~) + tr(P~^T W' P~ P~^T P~)                                    (Eq. 10)
    grad L_G = 2 P~ P~^T W' P~ + 2 W' P~ P~^T P~ - 4 W P~                               (Eq. 11)

with ``W_i = X_i^T X_i`` and ``W'_i = X_i^T G_A X_i``, ``G_A = A^T A``. The paper writes Eq. 10
for a column-orthonormal ``A``, where ``W' = W``; keeping ``G_A`` makes refinement exact for any
``A`` it is handed, so that it never moves ``P~`` only to make up for ``A A^T != I``. Two affinities:

- ``"full"``: the Gram matrices above, the original PandA refinement. With ``Y_i = X_i P~_i`` the
  loss is ``-2 ||Y_i||^2 + tr(Y_i^T G_A Y_i P~_i^T P~_i)`` and the gradient Eq. 12,
  ``2 P~ Y^T G_A Y + 2 X^T (G_A Y P~^T P~ - 2 Y)``: never an ``S x S`` matrix.
- ``"mutual_knn"``: ``W_i = M_i * (X_i^T X_i)`` and ``W'_i = M_i * (X_i^T G_A X_i)`` with ``M_i`` the
  mutual k-nearest-neighbour graph of the fibres (Alg. 2), stored sparse; Eq. 10-11 then need
  only ``W P~`` and ``W' P~``, ``(S, R_S)`` products.

Losses are per sample (each sample has parts of its own, so there is nothing to sum across
samples or devices).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch
from einops import rearrange
from torch import Tensor

from panda_lightning.functional.factorization import project_nonnegative_
from panda_lightning.functional.validation import check_choice, check_float, check_int

AFFINITIES = ("full", "mutual_knn")
NUM_NEIGHBOURS = 16  # k of the mutual kNN graph, unless a caller says otherwise
_EDGES_AT_ONCE = 4096


def _loss_from_cross(cross: Tensor, quartic_cross: Tensor, parts_gram: Tensor) -> Tensor:
    """Eq. 10 from ``cross = P~^T W P~``, ``quartic_cross = P~^T W' P~`` and ``parts_gram = P~^T P~``
    (all ``(..., R_S, R_S)``): ``-2 tr(cross) + tr(quartic_cross parts_gram)``."""
    return -2 * cross.diagonal(dim1=-2, dim2=-1).sum(-1) + (quartic_cross.mT * parts_gram).sum((-2, -1))


def _loss_and_gradient(parts: Tensor, affinity_parts: Tensor, quartic_affinity_parts: Tensor) -> tuple[Tensor, Tensor]:
    """Eq. 10 and Eq. 11 from ``P~``, ``W P~`` and ``W' P~`` (all ``(..., S, R_S)``), with
    ``R_S x R_S`` products in place of ``P~ P~^T``."""
    cross = parts.mT @ affinity_parts
    quartic_cross = parts.mT @ quartic_affinity_parts
    parts_gram = parts.mT @ parts
    gradient = 2 * parts @ quartic_cross + 2 * quartic_affinity_parts @ parts_gram - 4 * affinity_parts
    return _loss_from_cross(cross, quartic_cross, parts_gram), gradient


def _check_parts_fit(parts: Tensor, positions: int, what: str, shape: tuple[int, ...]) -> None:
    if parts.ndim != len(shape) or parts.shape[-2] != positions or parts.shape[:-2] != shape[:-2]:
        expected = ", ".join(map(str, (*shape[:-2], positions, "R_S")))
        raise ValueError(f"parts of shape {tuple(parts.shape)} do not fit {what} of shape {shape}: expected ({expected}).")


def refinement_loss_and_gradient(
    affinity: Tensor, parts: Tensor, quartic_affinity: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """Eq. 10 and its gradient Eq. 11 for affinities given as matrices, dense or sparse.

    Only ``W P~`` and ``W' P~`` are formed (``(S, R_S)`` products, sparse when the affinities
    are), then ``R_S x R_S`` products: ``P~ P~^T`` never is.

    Args:
        affinity: ``W``, symmetric, ``(S, S)`` dense or sparse (e.g. from
            :func:`mutual_knn_affinity`), or ``(N, S, S)`` dense.
        parts: ``P~``, ``(S, R_S)``, or ``(N, S, R_S)`` with a batch of affinities.
        quartic_affinity: ``W'`` of the quartic term, shaped as ``affinity``; ``None``: ``W``
            (the paper's Eq. 10, exact for a column-orthonormal ``A``).

    Returns:
        ``(loss, gradient)``: the loss, a scalar (or ``(N,)``), and its gradient, shaped as ``parts``.
    """
    _check_parts_fit(parts, affinity.shape[-1], "the affinity", tuple(affinity.shape))
    affinity_parts = affinity @ parts
    quartic_affinity_parts = affinity_parts if quartic_affinity is None else quartic_affinity @ parts
    return _loss_and_gradient(parts, affinity_parts, quartic_affinity_parts)


def low_rank_refinement_loss_and_gradient(
    features: Tensor, parts: Tensor, appearances_gram: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """Eq. 10 and its gradient for the full affinities ``W = X^T X``, ``W' = X^T G_A X``, in the
    low-rank form Eq. 12.

    With ``Y = X P~`` (``R_C x R_S``): ``L_G = -2 ||Y||^2 + tr(Y^T G_A Y P~^T P~)`` and
    ``grad = 2 P~ Y^T G_A Y + 2 X^T (G_A Y P~^T P~ - 2 Y)``: two passes of ``R_C * S * R_S``,
    no ``S x S``. This is ``||Z_i - A A^T Z_i P~ P~^T||^2 - ||Z_i||^2`` and its gradient.

    Args:
        features: ``X = A^T Z_i``, ``(R_C, S)``, or ``(N, R_C, S)``.
        parts: ``P~``, ``(S, R_S)``, or ``(N, S, R_S)``.
        appearances_gram: ``G_A = A^T A``, ``(R_C, R_C)``; ``None``: the identity (the paper's
            Eq. 10, exact for a column-orthonormal ``A``).

    Returns:
        ``(loss, gradient)``: the loss, a scalar (or ``(N,)``), and its gradient, shaped as ``parts``.
    """
    _check_parts_fit(parts, features.shape[-1], "the features", tuple(features.shape))
    Y = features @ parts
    weighted = Y if appearances_gram is None else appearances_gram @ Y  # G_A Y
    parts_gram = parts.mT @ parts
    quartic_cross = Y.mT @ weighted  # P~^T W' P~
    gradient = 2 * parts @ quartic_cross + 2 * features.mT @ (weighted @ parts_gram - 2 * Y)
    return _loss_from_cross(Y.mT @ Y, quartic_cross, parts_gram), gradient


def _check_num_neighbours(num_neighbours: int, positions: int) -> None:
    check_int("num_neighbours", num_neighbours, low=1, high=positions - 1, why=f"S - 1, with S = {positions} positions at this layer")


def mutual_knn_graph(features: Tensor, num_neighbours: int, chunk_size: int = 256) -> Tensor:
    """The edges of Alg. 2's mutual k-nearest-neighbour graph of ``X``'s columns (the fibres).

    Fibres ``j != k`` are joined when each is among the other's ``num_neighbours`` nearest in
    Euclidean distance; every fibre is joined to itself, so that ``num_neighbours = S - 1`` joins
    every pair. Ties in distance are broken by :func:`torch.topk`.

    Distances are computed ``chunk_size`` rows at a time, so memory is ``O(S * num_neighbours)``
    plus two ``chunk_size x S`` blocks (Gram and distances), never ``S x S``; the time is that of
    forming ``X^T X``, ``R_C S^2``.

    Args:
        features: ``X = A^T Z_i``, ``(R_C, S)``.
        num_neighbours: ``k``, from 1 to ``S - 1``.
        chunk_size: rows of the distance matrix held at once.

    Returns:
        ``(2, E)`` long: each edge as ``(j, k)``, both directions, the ``S`` self-loops last.
    """
    if features.ndim != 2:
        raise ValueError(f"features must be one sample's X = A^T Z_i, (R_C, S); got shape {tuple(features.shape)}.")
    positions = features.shape[1]
    _check_num_neighbours(num_neighbours, positions)
    check_int("chunk_size", chunk_size, low=1)
    squared_norms = features.square().sum(0)
    neighbours = torch.empty(positions, num_neighbours, dtype=torch.long, device=features.device)
    for start in range(0, positions, chunk_size):
        stop = min(start + chunk_size, positions)
        # ||x_j||^2 + ||x_k||^2 - 2 x_j^T x_k, in place: one more chunk-sized buffer, not three.
        distances = (-2 * features[:, start:stop].T @ features).add_(squared_norms).add_(squared_norms[start:stop, None])
        distances.diagonal(offset=start).fill_(float("inf"))  # a fibre is no neighbour of itself
        neighbours[start:stop] = distances.topk(num_neighbours, dim=1, largest=False).indices
    # Edge j -> k is mutual when k -> j is an edge too; keys j * S + k make that a set lookup.
    sources = torch.arange(positions, device=features.device).repeat_interleave(num_neighbours)
    targets = neighbours.flatten()
    mutual = torch.isin(targets * positions + sources, sources * positions + targets)
    diagonal = torch.arange(positions, device=features.device)
    return torch.stack([torch.cat([sources[mutual], diagonal]), torch.cat([targets[mutual], diagonal])])


def graph_affinity(features: Tensor, edges: Tensor, appearances_gram: Tensor | None = None) -> Tensor:
    """``W = M * (X^T G_A X)``: the inner products ``x_j^T G_A x_k`` of the fibres on a graph's edges.

    Args:
        features: ``X = A^T Z_i``, ``(R_C, S)``.
        edges: ``(2, E)``, both directions of each edge, each once, from :func:`mutual_knn_graph`.
        appearances_gram: ``G_A = A^T A``, ``(R_C, R_C)``; ``None``: the identity.

    Returns:
        ``(S, S)``, a symmetric sparse CSR tensor with ``E`` entries.
    """
    positions = features.shape[1]
    ones = torch.ones_like(edges[0], dtype=features.dtype)
    pattern = torch.sparse_coo_tensor(edges, ones, (positions, positions), check_invariants=False)
    # CSR: the product W P~, done at every step, is an order of magnitude faster than with COO on CPU.
    with warnings.catch_warnings():  # torch says CSR support is "beta" once per process; we rely on `@` only
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")
        pattern = pattern.coalesce().to_sparse_csr()
    return reweighted(pattern, features, appearances_gram)


def reweighted(affinity: Tensor, features: Tensor, appearances_gram: Tensor | None = None) -> Tensor:
    """The graph of the sparse CSR ``affinity`` with the weights ``x_j^T G_A x_k`` of
    :func:`graph_affinity`: the same sparsity pattern, so a second weighting needs no second sort."""
    rows = torch.repeat_interleave(
        torch.arange(affinity.shape[0], device=features.device), affinity.crow_indices().diff()
    )
    columns = affinity.col_indices()
    weighted = features if appearances_gram is None else appearances_gram @ features
    # A block of edges at a time: gathering every edge's two fibres at once would take 2 R_C E numbers.
    values = features.new_empty(columns.numel())
    for start in range(0, columns.numel(), _EDGES_AT_ONCE):
        block = slice(start, start + _EDGES_AT_ONCE)
        values[block] = (features[:, rows[block]] * weighted[:, columns[block]]).sum(0)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")
        return torch.sparse_csr_tensor(affinity.crow_indices(), columns, values, affinity.shape, check_invariants=False)


def mutual_knn_affinity(
    features: Tensor, num_neighbours: int, chunk_size: int = 256, appearances_gram: Tensor | None = None
) -> Tensor:
    """The sparse affinity of Alg. 2: ``W = M * (X^T G_A X)`` with ``M`` the mutual kNN graph of
    ``X``'s columns (:func:`mutual_knn_graph`) and ``G_A`` the identity unless given.

    The diagonal (``W_jj = ||x_j||^2`` without ``G_A``) is always kept, so that
    ``num_neighbours = S - 1`` gives exactly the full ``X^T G_A X``, as Sec. 5.3.1 says it should.

    Returns:
        ``W``, ``(S, S)``, a symmetric sparse CSR tensor with at most ``S * (k + 1)`` entries.
    """
    return graph_affinity(features, mutual_knn_graph(features, num_neighbours, chunk_size), appearances_gram)


def _largest_eigenvalue(times_affinity: Callable[[Tensor], Tensor], start: Tensor, iterations: int = 20) -> Tensor:
    """``||W_i||_2`` for each sample by power iteration on ``v -> W_i v`` from ``start: (N, S, 1)``,
    ``(N,)``. It errs from below, which only makes a step too long, and the step then halves."""
    vector, norm = start, start.new_zeros(start.shape[0])
    for _ in range(iterations):
        image = times_affinity(vector)
        norm = torch.linalg.vector_norm(image, dim=(1, 2))
        vector = image / norm.clamp_min(torch.finfo(start.dtype).tiny)[:, None, None]
    return norm


def _descend(
    objective: Callable[[Tensor], tuple[Tensor, Tensor]],
    curvature: Callable[[Tensor], Tensor],
    parts: Tensor,
    lr: float,
    steps: int,
    max_halvings: int,
) -> tuple[Tensor, Tensor]:
    """Projected gradient descent with step sizes ``lr / curvature(P~_i)``, each sample's ``lr``
    halved whenever a trial step would raise its objective, and kept halved for the next steps. A
    step that would empty a part
    (project a whole column to zero) counts as too long as well: an empty part has a zero gradient
    and could never come back, although emptying one often lowers Eq. 10 when ``P~`` is too large.
    A sample that no step lowers within ``max_halvings`` halvings is at a stationary point to
    rounding and stays where it is.

    ``parts: (N, S, R_S)``; returns the parts and the losses ``(steps + 1, N)``.
    """
    loss, gradient = objective(parts)
    rates = torch.full_like(loss, lr)
    # Rises within rounding count as no rise: the objective is a difference of large terms.
    tolerance = 64 * torch.finfo(parts.dtype).eps
    history = [loss]
    for _ in range(steps):
        bound = curvature(parts)
        pending = torch.ones_like(loss, dtype=torch.bool)
        for _ in range(max_halvings + 1):
            step_sizes = rates / bound
            trial = project_nonnegative_(parts - step_sizes[:, None, None] * gradient)
            trial_loss, trial_gradient = objective(trial)
            keeps_parts = (trial.ne(0).any(dim=1) | parts.eq(0).all(dim=1)).all(dim=1)
            accepted = pending & keeps_parts & (trial_loss <= loss + tolerance * loss.abs())
            parts = torch.where(accepted[:, None, None], trial, parts)
            gradient = torch.where(accepted[:, None, None], trial_gradient, gradient)
            loss = torch.where(accepted, trial_loss, loss)
            pending &= ~accepted
            if not pending.any():
                break
            rates = torch.where(pending, rates / 2, rates)
        history.append(loss)
    return parts, torch.stack(history)


def refine_parts(
    Z: Tensor,
    A: Tensor,
    P: Tensor,
    affinity: str = "full",
    num_neighbours: int = NUM_NEIGHBOURS,
    steps: int = 10,
    lr: float = 4.0,
    chunk_size: int = 256,
    max_halvings: int = 30,
    return_losses: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """Each sample's own parts ``P~_i``: projected gradient descent on Eq. 10 from ``P~_i = P`` (Alg. 2).

    The step size is ``lr / (4 ||W_i||_2 + 12 ||W'_i||_2 ||P~_i||_2^2)``: ``lr`` over a bound on the
    gradient's Lipschitz constant at the current parts (the norms by power iteration), so
    ``lr`` depends neither on the scale of the activations, which varies by orders of magnitude
    between layers and generators, nor on that of ``P``. ``lr = 1`` stays within the bound; the
    default 4 was faster on a face DCGAN layer and on synthetic data. A step that would raise a
    sample's objective, or empty one of its parts, is halved (for good) until it does not.

    Args:
        Z: activations, one sample ``(C, S)`` or a batch ``(N, C, S)``.
        A: appearance factors, ``(C, R_C)``.
        P: global parts factors, ``(S, R_S)``, non-negative.
        affinity: ``"full"`` (``W_i = X_i^T X_i``, ``W'_i = X_i^T A^T A X_i``, by Eq. 12) or
            ``"mutual_knn"`` (Alg. 2, the same on the mutual kNN graph, sparse).
        num_neighbours: ``k`` of the mutual kNN graph, from 1 to ``S - 1``; unused with ``"full"``.
        steps: projected gradient steps: "a few" (Sec. 5.3). The parts then stay each sample's version
            of the global ones; many steps cluster the sample's fibres afresh and the parts lose their
            correspondence across samples (seen on the face DCGAN at 100 steps).
        lr: the step size as a multiple of ``1 / (4 ||W_i||_2 + 12 ||W'_i||_2 ||P~_i||_2^2)``.
        chunk_size: rows of the distance matrix held at once while building the kNN graph.
        max_halvings: halvings of the step size within one step before a sample is left as it is.
        return_losses: also return Eq. 10 before and after each step.

    Returns:
        The refined parts, ``(S, R_S)`` or ``(N, S, R_S)``, non-negative; with ``return_losses``
        also the losses, ``(steps + 1,)`` or ``(steps + 1, N)``.
    """
    check_choice("affinity", affinity, AFFINITIES)
    if Z.ndim not in (2, 3):
        raise ValueError(f"Z must be one sample (C, S) or a batch (N, C, S) of unfolded activations; got shape {tuple(Z.shape)}.")
    if A.ndim != 2 or P.ndim != 2:
        raise ValueError(f"A must be (C, R_C) and P (S, R_S); got shapes {tuple(A.shape)} and {tuple(P.shape)}.")
    channels, positions = Z.shape[-2:]
    layer = f"(C, S) = ({A.shape[0]}, {P.shape[0]})"
    if channels != A.shape[0]:
        raise ValueError(
            f"Z has C = {channels} channels but A has {A.shape[0]} rows: expected activations of the layer "
            f"the factors were fitted to, {layer} per sample."
        )
    if positions != P.shape[0]:
        raise ValueError(
            f"Z has S = {positions} spatial positions but P has {P.shape[0]} rows: expected activations of "
            f"the layer the factors were fitted to, {layer} per sample."
        )
    if affinity == "mutual_knn":
        _check_num_neighbours(num_neighbours, positions)
        check_int("chunk_size", chunk_size, low=1)
    check_int("steps", steps, low=0)
    check_int("max_halvings", max_halvings, low=0)
    check_float("lr", lr, low=0, low_inclusive=False)

    batch = Z if Z.ndim == 3 else Z[None]
    samples = batch.shape[0]
    # X_i = A^T Z_i for every sample as one (R_C x C) @ (C x N*S) product.
    features = rearrange(A.T @ rearrange(batch, "n c s -> c (n s)"), "r (n s) -> n r s", n=samples)
    appearances_gram = A.T @ A
    if affinity == "full":

        def times_affinity(vectors: Tensor) -> Tensor:
            return features.mT @ (features @ vectors)

        def times_quartic_affinity(vectors: Tensor) -> Tensor:
            return features.mT @ (appearances_gram @ (features @ vectors))

        def objective(parts: Tensor) -> tuple[Tensor, Tensor]:
            return low_rank_refinement_loss_and_gradient(features, parts, appearances_gram)

    else:
        # One sparse graph per sample, O(S k) each, built one after the other: one chunk of
        # distances in memory at a time.
        graphs = [mutual_knn_graph(x, num_neighbours, chunk_size) for x in features]
        affinities = [graph_affinity(x, edges) for x, edges in zip(features, graphs)]
        quartic_affinities = [reweighted(w, x, appearances_gram) for w, x in zip(affinities, features)]

        def times_affinity(vectors: Tensor) -> Tensor:
            return torch.stack([w @ v for w, v in zip(affinities, vectors)])

        def times_quartic_affinity(vectors: Tensor) -> Tensor:
            return torch.stack([w @ v for w, v in zip(quartic_affinities, vectors)])

        def objective(parts: Tensor) -> tuple[Tensor, Tensor]:
            return _loss_and_gradient(parts, times_affinity(parts), times_quartic_affinity(parts))

    # A start that is not constant: activations centred along S would make ones an eigenvector of 0.
    start = torch.linspace(1, 2, positions, dtype=features.dtype, device=features.device).expand(samples, positions)[..., None]
    spectral_norm = _largest_eigenvalue(times_affinity, start)
    quartic_spectral_norm = _largest_eigenvalue(times_quartic_affinity, start)

    def curvature(parts: Tensor) -> Tensor:
        # A bound on the gradient's Lipschitz constant near P~: 4 ||W||_2 + 12 ||W'||_2 ||P~||_2^2,
        # from the quadratic and the quartic term. A sample whose W is zero has a zero gradient,
        # and any finite step leaves it as it is.
        bound = 4 * spectral_norm + 12 * quartic_spectral_norm * torch.linalg.matrix_norm(parts, ord=2) ** 2
        return torch.where(bound > 0, bound, torch.ones_like(bound))

    global_parts = P.to(features).expand(samples, *P.shape).clone()
    parts, losses = _descend(objective, curvature, global_parts, lr, steps, max_halvings)
    if Z.ndim == 2:
        parts, losses = parts[0], losses[:, 0]
    return (parts, losses) if return_losses else parts
