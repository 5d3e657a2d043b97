"""What the benchmarks share: timing a call."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def median_seconds(function: Callable, repeats: int, *args) -> float:
    """The median wall time of ``function(*args)`` over ``repeats`` calls, after one warm-up call."""
    function(*args)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function(*args)
        times.append(time.perf_counter() - start)
    return statistics.median(times)
