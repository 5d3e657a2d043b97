"""When to call a streamed fit converged: on the held-out error, which batch noise does not move.

Each training batch's error scatters around the model's error (by about 0.04 on the face
DCGAN at 64 samples a batch), far more than one step improves it, so a rule on the training
error stops on noise. The error on a fixed held-out set is a deterministic function of the
factors: we call the fit converged once it has not fallen below ``(1 - tol)`` times its best
for ``patience`` evaluations in a row (the rule of Lightning's ``EarlyStopping``, with a
relative ``min_delta``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass
class ConvergenceTracker:
    """Tracks the best held-out error and the evaluations since it last fell.

    Args:
        tol: smallest relative decrease below the best that counts as progress.
        patience: evaluations without progress after which the fit is converged.
    """

    tol: float = 1e-3
    patience: int = 4
    best: float = math.inf
    checks_without_progress: int = 0

    def update(self, value: float) -> bool:
        """Add one evaluation of the held-out error; return whether it made progress."""
        progress = value < self.best * (1 - self.tol)
        if progress:
            self.best = value
            self.checks_without_progress = 0
        else:  # the best stays: slow steady falls add up until they count
            self.checks_without_progress += 1
        return progress

    @property
    def converged(self) -> bool:
        return self.checks_without_progress >= self.patience

    def state_dict(self) -> dict[str, float]:
        return {key: getattr(self, key) for key in _STATE}

    def load_state_dict(self, state: dict[str, float]) -> None:
        for key in _STATE:
            if key in state:  # (a checkpoint of an older version tracked other quantities)
                setattr(self, key, state[key])


_STATE = ("best", "checks_without_progress")
