"""Comparing edits fairly: each one set to change its region of interest by the same amount.

ROIR (Eq. 13) compares the change outside a region with the change inside it. Two methods'
ROIRs are only comparable when their edits are equally strong, and "strength" means different
things to each (a step in latent space, a multiple of an appearance at a layer), so the
strength of each edit is set to the one that changes the region by a target amount, measured
by :func:`panda_lightning.metrics.region_change`.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from panda_lightning.functional.validation import check_float, check_int


def matched_strength(
    change_at: Callable[[float], float],
    target: float,
    initial: float = 1.0,
    rtol: float = 0.02,
    max_evaluations: int = 10,
    max_strength: float = math.inf,
) -> tuple[float, float]:
    """The strength ``alpha > 0`` at which ``change_at(alpha)`` is ``target``, within ``rtol``.

    ``change_at`` is assumed to grow with ``alpha``, locally like ``alpha^p`` (``p = 1`` for a
    linear generator; saturating non-linearities lower it). Each new guess is the secant
    step of that power law in log-log coordinates, kept inside the bracket of strengths seen
    below and above the target (halfway between them, geometrically, when it would leave it), and
    within a factor of 10 of the last strength and at most ``max_strength``.

    Args:
        change_at: the region's change at a strength, e.g. the mean of ``region_change`` over
            a set of samples edited at ``alpha``.
        target: the change wanted, positive.
        initial: the first strength tried, positive.
        rtol: accept ``|change / target - 1| <= rtol``.
        max_evaluations: calls of ``change_at`` at most.
        max_strength: the strongest edit to try, at least ``initial``; beyond it an edit is no
            longer the edit meant (a latent far outside the prior, activations far past their range).

    Returns:
        ``(alpha, change)``: the strength and the change it makes; the closest to ``target``
        found if none was within ``rtol`` (an edit that saturates below the target, or whose
        change does not grow with its strength), which the caller checks.

    Raises:
        ValueError: if an argument is out of range or ``change_at`` returns a negative or
            non-finite change.
    """
    for name, value in (("target", target), ("initial", initial), ("rtol", rtol)):
        check_float(name, value, low=0, low_inclusive=False)
    if not max_strength >= initial:
        raise ValueError(f"max_strength={max_strength!r} must be at least initial={initial!r}.")
    check_int("max_evaluations", max_evaluations, low=2)

    seen: list[tuple[float, float]] = []

    def evaluate(alpha: float) -> float:
        change = float(change_at(alpha))
        if not math.isfinite(change) or change < 0:
            raise ValueError(f"change_at({alpha:g}) = {change!r}; a change must be a finite number, 0 or more.")
        seen.append((alpha, change))
        return change

    alpha, change, power = initial, evaluate(initial), 1.0
    while abs(change / target - 1) > rtol and len(seen) < max_evaluations:
        below = [a for a, c in seen if c < target]
        above = [a for a, c in seen if c > target]
        guess = alpha * 10 if change == 0 else alpha * (target / change) ** (1 / power)
        guess = min(max(guess, alpha / 10), alpha * 10)
        low, high = max(below, default=0.0), min(above, default=math.inf)
        if high <= low:
            break  # a stronger edit changed the region less: nothing to bracket
        if not low < guess < high:
            guess = math.sqrt(low * high) if low > 0 and math.isfinite(high) else (low * 4 if low > 0 else high / 4)
        guess = min(guess, max_strength)
        if any(guess == a for a, _ in seen):
            break  # the strongest edit allowed is not strong enough
        previous_alpha, previous_change = alpha, change
        alpha, change = guess, evaluate(guess)
        if change > 0 and previous_change > 0 and alpha != previous_alpha:
            slope = math.log(change / previous_change) / math.log(alpha / previous_alpha)
            power = min(max(slope, 0.1), 10.0) if math.isfinite(slope) else 1.0
    return min(seen, key=lambda pair: abs(pair[1] / target - 1))
