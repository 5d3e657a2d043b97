"""Matched edit strengths: the root finder behind the locality table's fair comparison."""

from __future__ import annotations

import itertools
import math

import pytest

from benchmarks.evidence.locality.comparison import matched_strength


@pytest.mark.parametrize("power", [1.0, 0.5, 2.0, 3.0])
@pytest.mark.parametrize("initial", [0.01, 1.0, 300.0])
def test_power_laws_reach_the_target_within_tolerance(power, initial):
    calls = []

    def change_at(alpha):
        calls.append(alpha)
        return 0.7 * alpha**power

    alpha, change = matched_strength(change_at, target=0.1, initial=initial, rtol=0.01)
    assert abs(change / 0.1 - 1) <= 0.01
    assert change == pytest.approx(0.7 * alpha**power)
    assert len(calls) <= 6


def test_a_saturating_change_gives_a_bracketed_root():
    # tanh saturates at 0.2: the power law's guesses overshoot, the bracket keeps them honest.
    alpha, change = matched_strength(lambda a: 0.2 * math.tanh(a / 5), target=0.19, initial=1.0, rtol=0.005)
    assert abs(change / 0.19 - 1) <= 0.005
    assert alpha == pytest.approx(5 * math.atanh(0.95), rel=0.05)


def test_an_unreachable_target_returns_the_closest_change_for_the_caller_to_check():
    alpha, change = matched_strength(lambda a: 0.05 * math.tanh(a), target=0.1, max_evaluations=6)
    assert change < 0.1 and abs(change / 0.1 - 1) > 0.02  # never within tolerance
    assert change == pytest.approx(0.05 * math.tanh(alpha))


def test_no_change_at_all_is_not_a_match():
    _, change = matched_strength(lambda a: 0.0, target=0.1, max_evaluations=4)
    assert change == 0.0


@pytest.mark.parametrize(
    "options, message",
    [
        ({"target": 0.0}, r"target=0.0 must be a positive finite number"),
        ({"target": float("nan")}, r"target=nan must be a positive finite number"),
        ({"initial": -1.0}, r"initial=-1.0 must be a positive finite number"),
        ({"rtol": 0}, r"rtol=0 must be a positive finite number"),
        ({"max_evaluations": 1}, r"max_evaluations=1 must be an integer of at least 2"),
        ({"max_strength": 0.5}, r"max_strength=0.5 must be at least initial=1.0"),
    ],
)
def test_bad_arguments_are_named(options, message):
    with pytest.raises(ValueError, match=message):
        matched_strength(lambda a: a, **{"target": 0.1, **options})


def test_a_non_finite_change_is_an_error_naming_the_strength():
    with pytest.raises(ValueError, match=r"change_at\(1\) = nan; a change must be a finite number"):
        matched_strength(lambda a: float("nan"), target=0.1)


def test_the_strength_never_passes_max_strength():
    tried = []

    def change_at(alpha):
        tried.append(alpha)
        return 1e-3 * alpha

    alpha, change = matched_strength(change_at, target=0.1, initial=1.0, max_strength=20.0)
    assert max(tried) == 20.0 and alpha == 20.0 and change == pytest.approx(0.02)
    assert len(tried) < 10  # it stops once the strongest allowed edit was tried


def test_each_step_moves_the_strength_by_at_most_ten_times():
    tried = []
    matched_strength(lambda a: tried.append(a) or 1e-9 * a, target=0.1, initial=1.0, max_evaluations=5)
    assert all(later / earlier <= 10 + 1e-9 for earlier, later in itertools.pairwise(tried))
