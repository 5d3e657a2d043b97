"""Projected gradient descent with an adaptive step size: the update of one block of Algorithm 1."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch
from torch import Tensor
from torch.optim import Optimizer

from panda_lightning.factorization import project_nonnegative_, project_orthonormal_

PROJECTIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "nonnegative": project_nonnegative_,  # the parts, P >= 0
    "orthonormal": project_orthonormal_,  # the appearances, A^T A = I
}


class ProjectedGradientDescent(Optimizer):
    """``p <- proj(p - step_size * grad)`` with the step size found by backtracking (Lin 2007).

    A trial step is accepted when it decreases the objective sufficiently along the projection
    arc, ``f(p+) <= f(p) + sufficient_decrease * <grad, p+ - p> + rounding`` (Armijo); otherwise
    the step size is halved and the step tried again. After a step accepted at its first trial
    the step size grows by ``growth`` for the next one, up to the group's ``lr``, so one unlucky
    batch does not keep it small for the rest of the fit; ``growth = 1`` gives the classic,
    never-growing rule. ``lr`` is thus the largest step size: lowering it (as a scheduler does
    through ``param_groups``) is how a stochastic fit settles.

    ``step(closure, objective)`` takes PyTorch's closure convention (as LBFGS): ``closure()``
    evaluates the objective at the parameters' current value, sets their ``.grad`` and returns
    the objective as a tensor. ``objective()``, when given, returns the objective alone: the
    trial steps need no gradient.

    Args:
        params: the parameters of one block.
        lr: the first and largest step size.
        projection: ``"nonnegative"`` (``max{0, .}`` of Alg. 1), ``"orthonormal"`` (the polar
            factor: the nearest matrix with orthonormal columns) or ``None``.
        growth: factor by which the step size grows after a step accepted at its first trial.
        sufficient_decrease: the Armijo constant, in ``(0, 1)``.
        rounding: a rise of the objective this small counts as none: the objective's rounding
            error, in its own units (an objective that is a difference of large terms has one).
        max_halvings: halvings within one step before giving up with ``FloatingPointError``.
    """

    def __init__(
        self,
        params: Iterable[Tensor],
        lr: float,
        projection: str | None = None,
        growth: float = 2.0,
        sufficient_decrease: float = 1e-4,
        rounding: float = 0.0,
        max_halvings: int = 40,
    ):
        if not lr > 0 or not math.isfinite(lr):
            raise ValueError(f"lr={lr} must be a positive finite number.")
        if projection is not None and projection not in PROJECTIONS:
            raise ValueError(f"projection={projection!r} must be None or one of {', '.join(map(repr, PROJECTIONS))}.")
        if not 1 <= growth < math.inf:
            raise ValueError(f"growth={growth} must be a finite number of at least 1 (1: the step size never grows).")
        if not 0 < sufficient_decrease < 1:
            raise ValueError(f"sufficient_decrease={sufficient_decrease} must lie strictly between 0 and 1.")
        if not 0 <= rounding < math.inf:
            raise ValueError(f"rounding={rounding} must be a finite number of at least 0.")
        defaults = {
            "lr": lr, "projection": projection, "growth": growth, "sufficient_decrease": sufficient_decrease,
            "rounding": rounding, "max_halvings": max_halvings,
        }
        super().__init__(params, defaults)
        for group in self.param_groups:
            self.state_for(group)["step_size"] = float(group["lr"])

    @property
    def step_size(self) -> float:
        """The current step size of the first parameter group."""
        return self.state_for(self.param_groups[0])["step_size"]

    @step_size.setter
    def step_size(self, value: float) -> None:
        self.state_for(self.param_groups[0])["step_size"] = float(value)

    def state_for(self, group: dict) -> dict:
        # Step size is per group; kept in the state of its first parameter so it is checkpointed.
        return self.state[group["params"][0]]

    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor], objective: Callable[[], Tensor] | None = None) -> Tensor:  # type: ignore[override]
        loss = closure()
        if not torch.isfinite(loss):
            raise FloatingPointError(f"the objective is {loss.item()} before the step; nothing was updated.")
        for group in self.param_groups:
            self._backtrack(group, objective or closure, loss)
        return loss

    def _backtrack(self, group: dict, objective: Callable[[], Tensor], loss: Tensor) -> None:
        params = [p for p in group["params"] if p.grad is not None]
        start = [p.detach().clone() for p in params]
        gradients = [p.grad.detach().clone() for p in params]
        project = PROJECTIONS.get(group["projection"])
        state = self.state_for(group)
        state["step_size"] = min(state["step_size"], group["lr"])
        for halvings in range(group["max_halvings"] + 1):
            for p, p0, g in zip(params, start, gradients):
                p.copy_(p0 - state["step_size"] * g)
                if project is not None:
                    project(p)
            trial = objective()
            slope = sum((g * (p - p0)).sum() for p, p0, g in zip(params, start, gradients))
            if trial <= loss + group["sufficient_decrease"] * slope + group["rounding"]:
                if halvings == 0 and slope < 0:
                    state["step_size"] = min(state["step_size"] * group["growth"], group["lr"])
                return
            state["step_size"] /= 2
        for p, p0 in zip(params, start):
            p.copy_(p0)
        raise FloatingPointError(
            f"no step of size down to {state['step_size']:.3g} (from lr={group['lr']}) lowers the objective "
            f"{loss.item():.6g} (last trial: {trial.item():.6g}); the parameters were left as they were."
        )
