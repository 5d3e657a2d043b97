"""`benchmarks/locality_table.py --quick` end to end: every method trained, chosen and tested
on faces whose regions MediaPipe found (CI builds its environment; elsewhere `make eval-env`)."""

from __future__ import annotations

import math
import re
import subprocess
import sys

import pytest
from conftest import ROOT


@pytest.mark.slow
def test_the_quick_table_ranks_an_edit_at_the_region_more_local_than_latent_directions(eval_python):
    result = subprocess.run(
        [sys.executable, "benchmarks/locality_table.py", "--quick", "--eval_python", str(eval_python)],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    table = result.stdout.split("ROIR (lower is more local)")[1].split("chosen edits")[0]
    rows = {}  # method: its four ROIR means, NaN where no edit reached the target change
    for line in table.strip().splitlines()[2:]:
        name, *cells, training = (cell.strip() for cell in line.split("|"))
        rows[name] = [math.nan if cell == "n/a" else float(cell.split("+-")[0]) for cell in cells]
        assert re.fullmatch(r"\d+\.\d\d s", training), line
    names = list(rows)
    assert [name.split(" (")[0] for name in names] == ["GANSpace", "SeFa"] + ["k-means parts"] * 2 + ["PandA"] * 8
    assert all(len(cells) == 4 and all(math.isnan(c) or c >= 0 for c in cells) for cells in rows.values())
    at_mask = next(cells for name, cells in rows.items() if "at the region's mask" in name)
    ganspace = rows[names[0]]
    assert all(ours < theirs for ours, theirs in zip(at_mask[:3], ganspace[:3])), rows  # a NaN fails too
    changes = [float(c) for c in re.findall(r"change (\d\.\d+)", result.stdout)]
    missing = sum(math.isnan(c) for cells in rows.values() for c in cells)
    assert len(changes) == len(rows) * 4 - missing and all(0.04 < c < 0.25 for c in changes), changes
