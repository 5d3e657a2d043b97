"""`python -m benchmarks.evidence.locality --quick` end to end: every method trained, chosen and tested
on faces whose regions MediaPipe found (CI builds its environment; elsewhere `make eval-env`),
on two splits and under three variants, read back from the results it writes as JSON."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from benchmarks.evidence.locality.__main__ import parse_arguments
from conftest import ROOT


@pytest.mark.slow
def test_the_quick_table_its_splits_and_variants(eval_python, tmp_path):
    path = tmp_path / "table.json"
    command = ["-m", "benchmarks.evidence.locality", "--quick", "--eval_python", str(eval_python), "--json", str(path)]
    result = subprocess.run(
        [sys.executable, *command], cwd=ROOT, capture_output=True, text=True, timeout=600, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    table = json.loads(path.read_text())
    regions = table["regions"]
    assert regions == ["eyes", "nose", "mouth", "background"]
    runs = table["runs"]
    # The table as set, one more split, then the quick run's three variants, each with one choice changed.
    assert [(run["split"], run["setting"]) for run in runs] == [
        (0, {"budget": 8, "target": 0.1, "select_by": "median", "grow": 0}),
        (1, {"budget": 8, "target": 0.1, "select_by": "median", "grow": 0}),
        (0, {"budget": 4, "target": 0.1, "select_by": "median", "grow": 0}),
        (0, {"budget": 8, "target": 0.1, "select_by": "median", "grow": 1}),
        (0, {"budget": 8, "target": 0.1, "select_by": "capped mean", "grow": 0}),
    ]
    names = [method["name"] for method in runs[0]["methods"]]
    assert [name.split(" (")[0] for name in names] == (
        ["GANSpace", "SeFa"] + ["k-means parts"] * 2 + ["LowRankGAN", "ReSeFa"] + ["PandA"] * 4
    )
    varied = [name for name in names if "refined" not in name and "64 parts" not in name]  # --vary main.8:16
    assert all([method["name"] for method in run["methods"]] == varied for run in runs[1:])

    samples = table["settings"]["samples"]
    for drawn in samples.values():  # every face dropped is counted, for a reason
        assert drawn["kept"] + sum(drawn["dropped"].values()) == drawn["drawn"] and drawn["kept"] >= 0.8 * drawn["drawn"]
    tested = samples["test"]["kept"]
    for run in runs:
        budget = run["setting"]["budget"]
        edits = {method["name"]: [method["regions"][region] for region in regions] for method in run["methods"]}
        present = [edit for found in edits.values() for edit in found if edit]
        for edit in present:
            roir = edit["roir"]
            assert edit["samples"] == tested and 0 <= edit["unchanged"] <= edit["capped"] <= tested
            assert 1 <= edit["screened"] <= budget
            low, high = roir["median_interval"]
            assert low <= roir["median"] <= high <= 10 and 0 <= roir["capped_mean"] <= 10
            assert 0.04 < edit["change"] < 0.25, edit
        medians = {name: [edit and edit["roir"]["median"] for edit in found] for name, found in edits.items()}
        at_mask = next(found for name, found in medians.items() if "at the region's mask" in name)
        ganspace = medians[names[0]]
        for ours, theirs in zip(at_mask[:3], ganspace[:3]):  # eyes, nose, mouth
            assert ours is not None and theirs is not None and ours < theirs, (run["setting"], medians)
    assert all(method["training_seconds"] > 0 for method in runs[0]["methods"])


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--variants", "budget=7"], "'budget=7': budget=7 must be an even number, 2 or more"),
        (["--variants", "budget=80"], "a budget of 80 is more than some methods have: 40 candidates for --directions 20"),
        (["--vary", "main.5:3"], "--vary [('main.5', 3)] must be among the --panda fits"),
        (["--splits", "0"], "--splits=0 must be 1 or more"),
    ],
)
def test_the_protocols_choices_are_checked_before_the_run(arguments, message, capsys):
    with pytest.raises(SystemExit):
        parse_arguments(arguments)
    assert message in capsys.readouterr().err


def test_the_fits_that_run_in_the_splits_and_variants():
    assert parse_arguments([]).vary == [("main.8", 16), ("main.8", 64)]
    assert parse_arguments(["--panda", "main.5:8", "main.8:64", "--refined"]).vary == [("main.8", 64)]
    assert parse_arguments(["--panda", "main.5:8", "--refined"]).vary == [("main.5", 8)]
