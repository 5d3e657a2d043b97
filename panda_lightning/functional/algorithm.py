"""Algorithm 1 of the paper as pure functions: one iteration of projected block-coordinate descent.

``algorithm_1_step`` takes a batch's objective, the factors and their step sizes, and returns the
updated factors and step sizes; it changes none of its inputs. ``PandA.training_step`` calls it
once per batch; anyone can call it without Lightning::

    largest = sizes = StepSizes(parts=8.0)                # R_C = C: no A step
    for Z in batches:                                     # Z: (N, C, S)
        step = algorithm_1_step(RelativeReconstructionError(Z), A, P, sizes, max_step_sizes=largest)
        A, P, sizes = step.appearances, step.parts, step.step_sizes
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor

from panda_lightning.functional.factorization import (
    gram_loss_and_parts_gradient,
    gram_reconstruction_loss,
    loss_and_appearance_gradient,
    loss_and_parts_gradient,
    project_nonnegative_,
    project_orthonormal_,
    reconstruction_loss,
)
from panda_lightning.functional.validation import check_float, check_int


def _same(tensor: Tensor) -> Tensor:
    return tensor


class RelativeReconstructionError:
    """The objective of Algorithm 1 on one batch, relative to the batch's energy:
    ``f(A, P) = sum_i ||Z_i - A (A^T Z_i P) P^T||^2 / sum_i ||Z_i||^2`` (Eq. 3 over ``sum_i ||Z_i||^2``).

    Dividing by the energy makes ``f`` the relative error, so one step size suits every layer.

    Args:
        Z: this process's activations, ``(N, C, S)``.
        reduce: sums a tensor over the processes of a multi-device fit (the sums over samples
            then cover every device's batch); the identity for one process.
    """

    def __init__(self, Z: Tensor, reduce: Callable[[Tensor], Tensor] = _same):
        self.Z, self.reduce = Z, reduce
        self.local_energy = Z.square().sum()  # every evaluation below reuses it
        self.energy = reduce(self.local_energy.clone())  # (a reduction may work in place)

    def __call__(self, A: Tensor, P: Tensor) -> Tensor:
        return self.reduce(reconstruction_loss(self.Z, A, P, self.local_energy)) / self.energy

    def with_parts_gradient(self, A: Tensor, P: Tensor) -> tuple[Tensor, Tensor]:
        """``f`` and its gradient with respect to ``P`` (Eq. 4), ``(S, R_S)``."""
        loss, gradient = loss_and_parts_gradient(self.Z, A, P, self.local_energy)
        return self.reduce(loss) / self.energy, self.reduce(gradient) / self.energy

    def with_appearances_gradient(self, A: Tensor, P: Tensor) -> tuple[Tensor, Tensor]:
        """``f`` and its gradient with respect to ``A`` (Eq. 5), ``(C, R_C)``."""
        loss, gradient = loss_and_appearance_gradient(self.Z, A, P, self.local_energy)
        return self.reduce(loss) / self.energy, self.reduce(gradient) / self.energy


class GramRelativeError:
    """:class:`RelativeReconstructionError` for a full orthonormal basis (``R_C = C``, so
    ``A A^T = I`` and no A step), from the batch's positions' Gram matrix ``G = sum_i Z_i^T Z_i``:
    ``f(P) = sum_i ||Z_i - Z_i P P^T||^2 / sum_i ||Z_i||^2``. Each evaluation costs
    ``O(S^2 R_S)``, whatever the batch's size and channels.

    Args:
        G: this process's batch's ``sum_i Z_i^T Z_i``, ``(S, S)``
            (:func:`~panda_lightning.functional.factorization.positions_gram`).
        reduce: as in :class:`RelativeReconstructionError`.
    """

    def __init__(self, G: Tensor, reduce: Callable[[Tensor], Tensor] = _same):
        self.G, self.reduce = G, reduce
        self.local_energy = G.diagonal().sum()
        self.energy = reduce(self.local_energy.clone())

    def __call__(self, A: None, P: Tensor) -> Tensor:
        _check_full_basis(A)
        return self.reduce(gram_reconstruction_loss(self.G, P, self.local_energy)) / self.energy

    def with_parts_gradient(self, A: None, P: Tensor) -> tuple[Tensor, Tensor]:
        """``f`` and its gradient with respect to ``P`` (Eq. 4 with ``A A^T = I``), ``(S, R_S)``."""
        _check_full_basis(A)
        loss, gradient = gram_loss_and_parts_gradient(self.G, P, self.local_energy)
        return self.reduce(loss) / self.energy, self.reduce(gradient) / self.energy

    def with_appearances_gradient(self, A: Tensor, P: Tensor) -> tuple[Tensor, Tensor]:
        raise ValueError(_GRAM_NEEDS_FULL_BASIS.format(A=tuple(A.shape)))


_GRAM_NEEDS_FULL_BASIS = (
    "A={A}: a positions' Gram matrix determines the objective only for a full orthonormal basis "
    "(appearance_rank = C, no A step), passed as A=None; an A step needs the activations themselves."
)


def _check_full_basis(A: Tensor | None) -> None:
    if A is not None:
        raise ValueError(_GRAM_NEEDS_FULL_BASIS.format(A=tuple(A.shape)))


@dataclass(frozen=True)
class LineSearch:
    """How a step size is chosen: backtracking from the current size (Lin 2007).

    A trial ``x+ = proj(x - t g)`` is accepted when
    ``f(x+) <= f(x) + sufficient_decrease * <g, x+ - x> + rounding`` (Armijo along the projection
    arc); otherwise ``t`` is halved, at most ``max_halvings`` times. After a step accepted at its
    first trial, ``t`` grows by ``growth`` for the next one, up to the block's largest step size,
    so one hard batch does not keep it small. ``rounding``: a rise of ``f`` this small counts as
    none (``f`` is a difference of terms of order 1, rounded).
    """

    growth: float = 2.0
    sufficient_decrease: float = 1e-4
    rounding: float = 0.0
    max_halvings: int = 40

    def __post_init__(self) -> None:
        check_float("growth", self.growth, low=1, why="1: the step size never grows")
        check_float("sufficient_decrease", self.sufficient_decrease, low=0, high=1, low_inclusive=False, high_inclusive=False)
        check_float("rounding", self.rounding, low=0)
        check_int("max_halvings", self.max_halvings, low=0)


def projected_gradient_step(
    objective: Callable[[Tensor], Tensor],
    x: Tensor,
    loss: Tensor,
    gradient: Tensor,
    step_size: float,
    max_step_size: float,
    project: Callable[[Tensor], Tensor] | None = None,
    line_search: LineSearch = LineSearch(),
) -> tuple[Tensor, float]:
    """One projected gradient step with backtracking, ``x+ = proj(x - t grad)``.

    Args:
        objective: ``f`` at a trial point (no gradient needed).
        x: the current point; not modified.
        loss: ``f(x)``; gradient: ``grad f(x)``, shaped as ``x``.
        step_size: the step size to try first; capped at ``max_step_size``.
        project: in-place projection onto the feasible set, or ``None``.
        line_search: see :class:`LineSearch`.

    Returns:
        ``(x+, t)``: the new point and the step size to start the next step with.

    Raises:
        FloatingPointError: ``loss`` is not finite, or no step down to ``max_halvings`` halvings
            lowers ``f`` (then the caller's factors are untouched, as nothing here writes them).
    """
    step_size = min(step_size, max_step_size)
    for halvings in range(line_search.max_halvings + 1):
        trial = x - step_size * gradient
        if project is not None:
            project(trial)
        trial_loss = objective(trial)
        slope = (gradient * (trial - x)).sum()
        accepted = trial_loss <= loss + line_search.sufficient_decrease * slope + line_search.rounding
        # The one wait for the device a trial needs: its three answers read together.
        finite, accepted, descending = torch.stack([loss.isfinite(), accepted, slope < 0]).tolist()
        if not finite:
            raise FloatingPointError(f"the objective is {loss.item()} before the step; nothing was updated.")
        if accepted:
            if halvings == 0 and descending:
                step_size = min(step_size * line_search.growth, max_step_size)
            return trial, step_size
        step_size /= 2
    raise FloatingPointError(
        f"no step of size down to {step_size:.3g} (from lr={max_step_size}) lowers the objective "
        f"{loss.item():.6g} (last trial: {trial_loss.item():.6g}); the parameters were left as they were."
    )


ROUNDING_ULPS = 8


class StepSizes(NamedTuple):
    """A step size per block of Algorithm 1; ``appearances=None``: no A step (with ``R_C = C``
    and ``A`` orthonormal, ``A A^T = I`` and the objective does not depend on ``A``)."""

    parts: float
    appearances: float | None = None


class Iteration(NamedTuple):
    """The result of :func:`algorithm_1_step`."""

    appearances: Tensor  # A after the A step, (C, R_C)
    parts: Tensor  # P after the P step, (S, R_S)
    relative_error: Tensor  # f(A, P) before the iteration, a scalar
    step_sizes: StepSizes  # to start the next iteration with


def algorithm_1_step(
    objective: RelativeReconstructionError | GramRelativeError,
    A: Tensor,
    P: Tensor,
    step_sizes: StepSizes,
    max_step_sizes: StepSizes,
    line_search: LineSearch | None = None,
    project_parts: Callable[[Tensor], Tensor] | None = project_nonnegative_,
) -> Iteration:
    """One iteration of Algorithm 1: a P step projected onto ``P >= 0``, then an A step, with the
    new ``P``, projected onto ``A^T A = I`` (the polar factor, Sec. 3.3).

    Args:
        objective: the batch's :class:`RelativeReconstructionError`, or with ``R_C = C`` its
            :class:`GramRelativeError`.
        A: ``(C, R_C)`` with orthonormal columns; P: ``(S, R_S)``, non-negative. Not modified.
        step_sizes: each block's current step size; ``appearances=None`` skips the A step.
        max_step_sizes: each block's largest step size (``lr``).
        line_search: see :class:`LineSearch`; by default its ``rounding`` allows
            ``ROUNDING_ULPS`` units in the last place of ``P``'s dtype, as the relative error is
            a difference of terms of order 1 (an exact fit would otherwise find no step).
        project_parts: the projection of the P step; ``None`` leaves the parts unconstrained (the
            paper's ablation of the non-negativity, Sec. 5.4).

    Returns:
        An :class:`Iteration`: the new factors, the error before the step and the next step sizes.
    """
    if line_search is None:
        line_search = LineSearch(rounding=ROUNDING_ULPS * torch.finfo(P.dtype).eps)
    # A square A with orthonormal columns has A A^T = I: with no A step it drops out of the P step.
    basis = None if step_sizes.appearances is None and A.shape[0] == A.shape[1] else A
    relative_error, gradient = objective.with_parts_gradient(basis, P)
    P, parts_step = projected_gradient_step(
        lambda P: objective(basis, P), P, relative_error, gradient, step_sizes.parts, max_step_sizes.parts,
        project_parts, line_search,
    )
    appearances_step = None
    if step_sizes.appearances is not None:
        loss, gradient = objective.with_appearances_gradient(A, P)
        A, appearances_step = projected_gradient_step(
            lambda A: objective(A, P), A, loss, gradient, step_sizes.appearances, max_step_sizes.appearances,
            project_orthonormal_, line_search,
        )
    return Iteration(A, P, relative_error, StepSizes(parts_step, appearances_step))
