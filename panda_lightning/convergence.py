"""When to call a streamed fit converged (after scikit-learn's ``_minibatch_convergence``).

Each batch's objective is noisy, so we follow its exponentially weighted average (EWA) and
call the fit converged once the EWA has not gone below its best by more than ``tol`` for
``patience`` steps in a row. The objective is PandA's relative error, already free of the
activations' scale, so ``tol`` is absolute.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass
class ConvergenceTracker:
    """Tracks the EWA of a per-step objective.

    Args:
        tol: smallest decrease of the EWA below its best that counts as progress.
        patience: steps without progress after which the fit is converged.
        smoothing: weight of the newest value in the EWA.
    """

    tol: float = 1e-4
    patience: int = 50
    smoothing: float = 0.02
    average: float = math.nan
    best: float = math.inf
    steps_without_progress: int = 0

    def update(self, value: float) -> bool:
        """Add one step's objective; return whether the fit has converged."""
        self.average = value if math.isnan(self.average) else (
            (1 - self.smoothing) * self.average + self.smoothing * value
        )
        if self.average < self.best - self.tol:
            self.best = self.average
            self.steps_without_progress = 0
        else:
            self.steps_without_progress += 1
        return self.converged

    @property
    def converged(self) -> bool:
        return self.steps_without_progress >= self.patience

    def state_dict(self) -> dict[str, float]:
        return {key: getattr(self, key) for key in _STATE}

    def load_state_dict(self, state: dict[str, float]) -> None:
        for key in _STATE:
            setattr(self, key, state[key])


_STATE = ("average", "best", "steps_without_progress")
