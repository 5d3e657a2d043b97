"""Algorithm 1's state as a torch Optimizer, so that Lightning checkpoints it and counts its steps."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer

from panda_lightning.functional.algorithm import Iteration, StepSizes
from panda_lightning.functional.validation import check_float

BLOCKS = ("parts", "appearances")  # Algorithm 1's order


class BlockCoordinateDescent(Optimizer):
    """The step sizes of :func:`~panda_lightning.functional.algorithm.algorithm_1_step`, one
    parameter group per block (``parts``, then ``appearances`` when it is updated).

    Each group's ``lr`` is the block's largest step size: lowering it through ``param_groups``,
    as a scheduler or :class:`~panda_lightning.PandA` at a stalled validation does, caps the
    next steps. The current step sizes live in the optimizer's state, so a checkpoint resumes
    them exactly. ``step(iteration=...)`` writes an iteration's factors and step sizes; through
    Lightning's optimizer wrapper each call is one ``global_step``.

    Args:
        parts: ``P``, ``(S, R_S)``.
        appearances: ``A``, ``(C, R_C)``, or ``None`` when Algorithm 1 does not update it.
        lr: the first and largest step size of every block.
    """

    def __init__(self, parts: Tensor, appearances: Tensor | None, lr: float):
        check_float("lr", lr, low=0, low_inclusive=False, why="the largest step size")
        factors = {"parts": parts, "appearances": appearances}
        groups = [{"params": [factors[block]], "block": block} for block in BLOCKS if factors[block] is not None]
        super().__init__(groups, {"lr": lr})
        for group in self.param_groups:
            self._state(group).setdefault("step_size", float(group["lr"]))

    def _state(self, group: dict[str, Any]) -> dict[str, Any]:
        # Kept in the state of the group's parameter, so that it is checkpointed.
        return self.state[group["params"][0]]

    @property
    def blocks(self) -> tuple[str, ...]:
        return tuple(group["block"] for group in self.param_groups)

    def step_sizes(self) -> StepSizes:
        """The step sizes to start the next iteration with."""
        return StepSizes(**{group["block"]: self._state(group)["step_size"] for group in self.param_groups})

    def max_step_sizes(self) -> StepSizes:
        return StepSizes(**{group["block"]: group["lr"] for group in self.param_groups})

    def halve_max_step_sizes(self) -> None:
        for group in self.param_groups:
            group["lr"] /= 2

    @torch.no_grad()
    def step(self, closure: Any = None, iteration: Iteration | None = None) -> None:  # type: ignore[override]
        """Write ``iteration``'s factors and step sizes. ``closure`` is Lightning's (its hooks)."""
        if closure is not None:
            closure()
        if iteration is None:
            raise TypeError("BlockCoordinateDescent.step needs the iteration=... of algorithm_1_step to write.")
        for group in self.param_groups:
            group["params"][0].copy_(getattr(iteration, group["block"]))
            self._state(group)["step_size"] = getattr(iteration.step_sizes, group["block"])
