"""`python -m benchmarks.locality --quick` end to end: every method trained, chosen and tested
on faces whose regions MediaPipe found (CI builds its environment; elsewhere `make eval-env`),
read back from the results it writes as JSON."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import ROOT


@pytest.mark.slow
def test_the_quick_table_ranks_an_edit_at_the_region_more_local_than_latent_directions(eval_python, tmp_path):
    path = tmp_path / "table.json"
    command = ["-m", "benchmarks.locality", "--quick", "--eval_python", str(eval_python), "--json", str(path)]
    result = subprocess.run(
        [sys.executable, *command], cwd=ROOT, capture_output=True, text=True, timeout=600, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    table = json.loads(path.read_text())
    regions = table["regions"]
    assert regions == ["eyes", "nose", "mouth", "background"]
    methods = table["methods"]
    names = [method["name"] for method in methods]
    assert [name.split(" (")[0] for name in names] == (
        ["GANSpace", "SeFa"] + ["k-means parts"] * 2 + ["LowRankGAN", "ReSeFa"] + ["PandA"] * 4
    )
    # Each method's chosen edit per region; None where none reached the target change.
    edits = {method["name"]: [method["regions"][region] for region in regions] for method in methods}
    roirs = {name: [edit and edit["roir"]["mean"] for edit in found] for name, found in edits.items()}
    assert all(roir is None or roir >= 0 for found in roirs.values() for roir in found), roirs
    at_mask = next(found for name, found in roirs.items() if "at the region's mask" in name)
    ganspace = roirs[names[0]]
    for ours, theirs in zip(at_mask[:3], ganspace[:3]):  # eyes, nose, mouth
        assert ours is not None and theirs is not None and ours < theirs, roirs
    tested = table["settings"]["samples"]["test"]["with_a_face"]
    present = [edit for found in edits.values() for edit in found if edit]
    assert all(edit["samples"] == tested and 0 <= edit["unchanged"] <= edit["capped"] <= tested for edit in present)
    changes = [edit["change"] for edit in present]
    assert changes and all(0.04 < change < 0.25 for change in changes), changes
    assert all(method["training_seconds"] > 0 for method in methods), [m["training_seconds"] for m in methods]
