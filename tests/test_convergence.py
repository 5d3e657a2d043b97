"""The convergence tracker: stops on a plateau, not while the error still falls."""

from __future__ import annotations

import math

from panda_lightning.convergence import ConvergenceTracker


def test_a_plateau_converges_after_patience_steps():
    tracker = ConvergenceTracker(tol=1e-3, patience=5)
    flags = [tracker.update(0.5) for _ in range(6)]
    assert flags == [False, False, False, False, False, True]


def test_a_falling_error_does_not_converge():
    tracker = ConvergenceTracker(tol=1e-3, patience=5)
    assert not any(tracker.update(1.0 - 0.01 * step) for step in range(50))


def test_falling_by_less_than_tol_is_no_progress():
    tracker = ConvergenceTracker(tol=1e-2, patience=3, smoothing=1.0)
    assert [tracker.update(value) for value in (0.5, 0.499, 0.498, 0.497)] == [False, False, False, True]


def test_state_round_trips_without_the_settings():
    tracker = ConvergenceTracker(tol=1e-3, patience=5)
    for value in (0.9, 0.8, 0.8):
        tracker.update(value)
    restored = ConvergenceTracker(tol=0.5, patience=2)
    restored.load_state_dict(tracker.state_dict())
    assert restored.state_dict() == tracker.state_dict()
    assert (restored.tol, restored.patience) == (0.5, 2)
    assert math.isnan(ConvergenceTracker().average)
