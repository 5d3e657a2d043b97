"""Argument checks with messages that name the bad value and what is valid (as scikit-learn's).

Every public function and class checks its arguments where they enter, with these helpers::

    check_int("parts_rank", 300, low=1, high=256, why="at most the number of positions H*W = 16*16")
    # ValueError: parts_rank=300 must be an integer from 1 to 256 (at most the number of positions H*W = 16*16).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from typing import Any


SHOWN = 60  # characters of a bad value that a message repeats


def shown(value: Any) -> str:
    """``repr(value)``, cut to :data:`SHOWN` characters: a message names a bad value, and does not
    echo a value of megabytes back to whoever sent it."""
    try:
        text = repr(value)
    except ValueError:  # an integer past Python's limit on digits converted to text
        return f"<an integer of {value.bit_length()} bits>"
    if len(text) <= SHOWN:
        return text
    return f"{text[: SHOWN - 1]}… ({len(text)} characters)"


def _range(low: float | None, high: float | None, low_inclusive: bool = True, high_inclusive: bool = True) -> str:
    if low is not None and high is not None:
        if low_inclusive and high_inclusive:
            return f" from {low} to {high}"
        return f" in {'[' if low_inclusive else '('}{low}, {high}{']' if high_inclusive else ')'}"
    if low is not None:
        return f" of at least {low}" if low_inclusive else f" greater than {low}"
    if high is not None:
        return f" of at most {high}" if high_inclusive else f" less than {high}"
    return ""


def _fail(name: str, value: Any, kind: str, bounds: str, why: str | None) -> ValueError:
    # "a positive integer" reads better than "an integer greater than 0".
    for bound, sign in ((" greater than 0", "positive"), (" of at least 0", "non-negative")):
        if bounds == bound:
            kind, bounds = f"a {sign} {kind.split(' ', 1)[1]}", ""
    if bounds == " of at least 1" and kind == "an integer":
        kind, bounds = "a positive integer", ""
    return ValueError(f"{name}={shown(value)} must be {kind}{bounds}{f' ({why})' if why else ''}.")


def check_int(name: str, value: Any, low: int | None = None, high: int | None = None, why: str | None = None) -> int:
    """``value`` as an ``int`` when it is an integer (not a bool) in ``[low, high]``; a
    ``ValueError`` naming ``name``, ``value``, the range and ``why`` otherwise."""
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Integral)
        or (low is not None and value < low)
        or (high is not None and value > high)
    ):
        raise _fail(name, value, "an integer", _range(low, high), why)
    return int(value)


def check_float(
    name: str,
    value: Any,
    low: float | None = None,
    high: float | None = None,
    low_inclusive: bool = True,
    high_inclusive: bool = True,
    why: str | None = None,
) -> float:
    """``value`` as a ``float`` when it is a finite real number within the bounds (each
    inclusive or not); a ``ValueError`` naming ``name``, ``value``, the range and ``why`` otherwise."""
    number = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if (
        not number
        or not _finite(value)
        or (low is not None and (value < low if low_inclusive else value <= low))
        or (high is not None and (value > high if high_inclusive else value >= high))
    ):
        raise _fail(name, value, "a finite number", _range(low, high, low_inclusive, high_inclusive), why)
    return float(value)


def _finite(value: numbers.Real) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer of hundreds of digits, as JSON may carry
        return False


def check_index(name: str, index: Any, size: int, what: str) -> int:
    """``index`` when it indexes one of ``size`` ``what`` (``0 <= index < size``)."""
    return check_int(name, index, low=0, high=size - 1, why=f"an index into the {size} {what}")


def check_choice(name: str, value: Any, choices: Iterable[Any]) -> Any:
    """``value`` when it is one of ``choices``."""
    choices = tuple(choices)
    if value not in choices:
        raise ValueError(f"{name}={shown(value)} must be one of {', '.join(map(repr, choices))}.")
    return value
