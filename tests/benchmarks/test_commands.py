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
    command = [sys.executable, "-m", "benchmarks.speed.race", "--skip", "streaming", "floor", "--reference-seconds", "3", "--reference-rates", "0.04", "--held-out", "64"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    floor = float(re.search(r"floor: ([0-9.]+), the held-out error of a fit", out).group(1))
    default = re.search(r"^default +([0-9.]+) +([0-9.]+) +(\S+) +(\S+)$", out, re.M)
    assert default and float(default.group(2)) == pytest.approx(floor, rel=0.05)  # (without the floor fit, its own best)
    assert re.search(r"^reference, lr 0.04 / energy +[0-9.]+ +[0-9.]+ +\S+ +\S+$", out, re.M)
    generator, outside = re.search(r"generator batches at ([0-9.]+) ms each; a step outside the generator ([0-9.]+) ms", out).group(1, 2)
    assert 0 < float(outside) and 0 < float(generator)


@pytest.mark.slow
@pytest.mark.parametrize("generator", ["stylegan2", "progan"])
def test_the_full_size_benchmark_prints_its_figures_at_a_small_size(generator):
    command = [sys.executable, "-m", "benchmarks.speed.full_size", "--generator", generator, "--resolution", "64",
               "--channel_max", "32", "--max_steps", "4"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert re.search(r"^fit: 4 steps \(not converged\), [0-9.]+ s in the training loop", out, re.M)
    for name in ("parts.png", "saliency.png", "edits.png", "refined_parts.png"):
        assert re.search(rf"^  {name} +[0-9.]+ s +[0-9.]+ MiB$", out, re.M), name
    assert re.search(r"^one edit at 64 px .*: [0-9]+ ms$", out, re.M) and re.search(r"^peak resident memory [0-9.]+ GiB", out, re.M)


@pytest.mark.slow
def test_the_app_benchmark_prints_each_latency_at_a_small_size():
    command = [sys.executable, "-m", "benchmarks.speed.editor_latency", "--repeats", "2", "--large_repeats", "1", "--resolution", "64", "--channel_max", "32"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    for generator in ("PhotoFaceDCGAN, 64x64 px", "StyleGAN2 config-f (random weights), 64x64 px"):
        assert re.search(rf"^{re.escape(generator)}, layer \S+ \(\d+, \d+, \d+\); the editor starts in [0-9.]+ s$", out, re.M)
    assert len(re.findall(r"^  edit \(slider move\) +[0-9.]+ ms +[0-9.]+ x the forward pass$", out, re.M)) == 2
    assert len(re.findall(r"^    of which the edited images +[0-9.]+ ms +[0-9.]+ x \(the rest: encoding them for the page\)$", out, re.M)) == 2
    assert len(re.findall(r"^  gallery of 8 appearances +[0-9.]+ ms$", out, re.M)) == 2
    assert re.search(r"^  edit through HTTP \(round trip\) +[0-9.]+ ms$", out, re.M)
    assert re.search(r"^  a photo 512x512 px opened, inverted and shown +[0-9.]+ s$", out, re.M)
    assert re.search(r"^  edit of the photo \(slider move\) +[0-9.]+ ms", out, re.M)


@pytest.mark.slow
def test_the_inversion_benchmark_prints_both_stages_and_the_locality(converged):
    command = [sys.executable, "-m", "benchmarks.evidence.inversion", "--ckpt_path", str(converged / "checkpoints" / "last.ckpt"),
               "--samples", "1", "--budgets", "0.05", "--losses", "l1"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    stage = r"\s+\d+ steps\s+[0-9.]+ s\s+[0-9.]+ [0-9.]+"
    for target in ("generated", "photo"):
        assert re.search(rf"^{target}\s+l1\s+0\.05 \|{stage} \|{stage}$", out, re.M), target
    assert re.search(r"^generated images\s+inside/outside\s+[0-9.]+\s+ROIR [0-9.]+$", out, re.M)
    assert re.search(r"^photo, l1\s+inside/outside\s+[0-9.]+\s+ROIR [0-9.]+$", out, re.M)
    regions = r"eyes [0-9.]+  nose [0-9.]+  mouth [0-9.]+$"
    assert "the ROIR at the face's regions is skipped" in out or (
        re.search(rf"^generated images \(\d of 1 faces found\)\s+({regions}|eyes   n/a)", out, re.M)
        and re.search(rf"^photo, l1\s+{regions}", out, re.M))
