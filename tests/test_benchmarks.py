"""The benchmarks that the README quotes run end to end (their figures are measurements, not
asserted; these tests check that each prints what it says it measures)."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from conftest import ROOT


@pytest.mark.slow
def test_the_race_prints_each_fit_against_the_floor():
    command = [sys.executable, "-m", "benchmarks.race", "--skip", "streaming", "floor", "--reference-seconds", "3", "--reference-rates", "0.04", "--held-out", "64"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    floor = float(re.search(r"floor: ([0-9.]+), the held-out error of a fit", out).group(1))
    default = re.search(r"^default +([0-9.]+) +([0-9.]+) +(\S+) +(\S+)$", out, re.M)
    assert default and float(default.group(2)) == pytest.approx(floor, rel=0.05)  # (without the floor fit, its own best)
    assert re.search(r"^reference, lr 0.04 / energy +[0-9.]+ +[0-9.]+ +\S+ +\S+$", out, re.M)
    generator, outside = re.search(r"generator batches at ([0-9.]+) ms each; a step outside the generator ([0-9.]+) ms", out).group(1, 2)
    assert 0 < float(outside) and 0 < float(generator)
