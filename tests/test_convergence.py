"""The convergence tracker: stops on a plateau of the held-out error, not while it still falls."""

from __future__ import annotations

import math

from panda_lightning.functional.convergence import ConvergenceTracker


def test_a_plateau_converges_after_patience_checks():
    tracker = ConvergenceTracker(tol=1e-3, patience=3)
    progress = [tracker.update(0.5) for _ in range(4)]
    assert progress == [True, False, False, False]
    assert tracker.converged


def test_a_falling_error_does_not_converge():
    tracker = ConvergenceTracker(tol=1e-3, patience=3)
    assert all(tracker.update(1.0 * 0.99**check) for check in range(50))
    assert not tracker.converged


def test_falling_by_less_than_tol_is_no_progress_and_a_worse_value_does_not_move_the_best():
    tracker = ConvergenceTracker(tol=1e-2, patience=3)
    assert [tracker.update(value) for value in (0.5, 0.499, 0.6, 0.497)] == [True, False, False, False]
    assert tracker.converged and tracker.best == 0.5


def test_slow_falls_add_up_until_they_count():
    # Each check falls by 0.4% of the error, tol is 1%: every third check is progress.
    tracker = ConvergenceTracker(tol=1e-2, patience=3)
    progress = [tracker.update(0.996**check) for check in range(10)]
    assert progress == [True, False, False, True, False, False, True, False, False, True]
    assert not tracker.converged


def test_state_round_trips_without_the_settings():
    tracker = ConvergenceTracker(tol=1e-3, patience=5)
    for value in (0.9, 0.8, 0.8):
        tracker.update(value)
    restored = ConvergenceTracker(tol=0.5, patience=2)
    restored.load_state_dict(tracker.state_dict())
    assert restored.state_dict() == tracker.state_dict() == {"best": 0.8, "checks_without_progress": 1}
    assert (restored.tol, restored.patience) == (0.5, 2)
    assert math.isinf(ConvergenceTracker().best)
