"""Projected gradient descent with backtracking: the update of one block of Algorithm 1."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch
from torch import Tensor
from torch.optim import Optimizer

from panda_lightning.factorization import project_nonnegative_


class ProjectedGradientDescent(Optimizer):
    """``p <- proj(p - step_size * grad)``, halving ``step_size`` until the objective does not rise.

    ``step(closure)`` needs a closure that evaluates the objective at the parameters' current
    value, sets their ``.grad`` and returns the objective as a tensor (PyTorch's closure
    convention, as for LBFGS). The step size starts at ``lr``, is halved whenever a trial step
    would raise the objective (Armijo backtracking, Lin 2007), and is kept for the next step;
    it never grows. So a too-large ``lr`` costs a few halvings, never a diverging fit.

    Args:
        params: the parameters of one block.
        lr: the first, largest step size.
        nonnegative: project onto ``p >= 0`` after each step (``max{0, .}`` of Alg. 1).
        max_halvings: halvings within one step before giving up with ``FloatingPointError``.
    """

    def __init__(self, params: Iterable[Tensor], lr: float, nonnegative: bool = False, max_halvings: int = 40):
        if not lr > 0 or not math.isfinite(lr):
            raise ValueError(f"lr={lr} must be a positive finite number.")
        super().__init__(params, {"lr": lr, "nonnegative": nonnegative, "max_halvings": max_halvings})
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
    def step(self, closure: Callable[[], Tensor]) -> Tensor:  # type: ignore[override]
        loss = closure()
        if not torch.isfinite(loss):
            raise FloatingPointError(f"the objective is {loss.item()} before the step; nothing was updated.")
        for group in self.param_groups:
            self._backtrack(group, closure, loss)
        return loss

    def _backtrack(self, group: dict, closure: Callable[[], Tensor], loss: Tensor) -> None:
        params = [p for p in group["params"] if p.grad is not None]
        start = [p.detach().clone() for p in params]
        gradients = [p.grad.detach().clone() for p in params]
        state = self.state_for(group)
        for _ in range(group["max_halvings"] + 1):
            for p, p0, g in zip(params, start, gradients):
                p.copy_(p0 - state["step_size"] * g)
                if group["nonnegative"]:
                    project_nonnegative_(p)
            trial = closure()
            # A step too small to change the objective beyond rounding also counts as no rise.
            if trial <= loss + 1e-7 * loss.abs():
                return
            state["step_size"] /= 2
        for p, p0 in zip(params, start):
            p.copy_(p0)
        raise FloatingPointError(
            f"no step of size down to {state['step_size']:.3g} (from lr={group['lr']}) lowers the objective "
            f"{loss.item():.6g} (last trial: {trial.item():.6g}); the parameters were left as they were."
        )
