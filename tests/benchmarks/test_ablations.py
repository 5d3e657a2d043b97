"""The ablation of Sec. 5.4 (``benchmarks/evidence/ablations.py``): its measures, and the paper's claim that
only the constrained model finds local, disjoint parts, on activations whose parts are known."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import torch

from benchmarks.evidence.ablations import concentration, overlap, relative_error, variants
from panda_lightning.functional.factorization import unfold
from panda_lightning.generators.layers import activations_at

from conftest import ROOT, PlantedGenerator


def test_the_measures_of_locality_on_parts_whose_answer_is_known():
    stripes = PlantedGenerator().planted_parts  # 4 disjoint stripes of 4 positions, unit columns
    assert overlap(stripes) == pytest.approx(0.0) and concentration(stripes) == pytest.approx(0.5)  # 2 of 4 positions
    even = torch.ones(16, 4) / 4
    assert overlap(even) == pytest.approx(1.0) and concentration(even) == pytest.approx(2 / 16)
    signed = torch.linalg.qr(torch.randn(16, 4, generator=torch.Generator().manual_seed(0)))[0]
    assert overlap(signed) == pytest.approx(overlap(signed.abs()))  # a part's sign does not make it local


def test_only_the_constrained_model_finds_the_planted_parts():
    generator = PlantedGenerator(channels=8, height=6, width=6, num_parts=3)  # 3 stripes of 12 positions
    free_overlaps = []
    for seed in range(3):
        latents = generator.sample_latents(256, torch.Generator().manual_seed(seed))
        maps = activations_at(generator, "features", lambda: generator(latents))
        fitted = {variant.name: variant for variant in variants(maps, 3, steps=300, seed=seed)}
        held_out = generator.sample_latents(64, torch.Generator().manual_seed(10 + seed))
        test = unfold(activations_at(generator, "features", lambda: generator(held_out)))
        panda, mpca = fitted["PandA"], fitted["MPCA unfolded"]
        assert relative_error(test, panda) < 1e-3 and relative_error(test, mpca) < 1e-3  # both span the planted parts
        # PandA's parts are the planted stripes (in some order and scale), whatever the start.
        assert overlap(panda.parts) < 0.01 and concentration(panda.parts) == pytest.approx(1 / 3, abs=0.01)
        cosines = (panda.parts / panda.parts.norm(dim=0)).T @ generator.planted_parts
        assert cosines.amax(dim=1).min() > 0.99
        # The unconstrained optimum's own basis mixes them.
        assert overlap(mpca.parts) > 0.5 and concentration(mpca.parts) < 0.25
        free_overlaps.append(overlap(fitted["no P >= 0"].parts))
    # Without the projection the answer is any basis of their span: which one, the start decides
    # (from PandA's non-negative start it is sometimes the stripes, here once in three).
    assert sum(value > 0.5 for value in free_overlaps) >= 2, free_overlaps


@pytest.mark.slow
def test_the_ablation_benchmark_prints_each_variant_and_draws_fig_10(tmp_path):
    picture = tmp_path / "ablations.png"
    command = [sys.executable, "-m", "benchmarks.evidence.ablations", "--quick", "--picture", str(picture)]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = {
        name: tuple(map(float, numbers))
        for name, *numbers in re.findall(r"^(.+?) +([0-9.]+) +([0-9.]+) +([0-9.]+) +([0-9.]+)$", result.stdout, re.M)
    }
    assert set(rows) == {"MPCA 3-way", "MPCA unfolded", "no P >= 0", "A steps, R_C = C/4", "PandA"}
    # On the face generator too: PandA's parts overlap least and its edits stay most inside their part.
    assert rows["PandA"][1] < min(rows["MPCA unfolded"][1], rows["no P >= 0"][1])
    assert rows["PandA"][3] > max(rows["MPCA unfolded"][3], rows["no P >= 0"][3])
    assert picture.stat().st_size > 10_000


@pytest.mark.slow
def test_the_rank_sweep_prints_each_rank_and_draws_its_parts(tmp_path):
    picture = tmp_path / "rank_sweep.png"
    command = [sys.executable, "-m", "benchmarks.evidence.rank_sweep", "--quick", "--picture", str(picture)]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = re.findall(r"^ +(\d+) +([0-9.]+) +([0-9.]+) +([0-9.]+) +([0-9.]+)$", result.stdout, re.M)
    assert [int(rank) for rank, *_ in rows] == [4, 8]
    errors = [float(error) for _, error, *_ in rows]
    assert errors[1] < errors[0]  # more parts, less error on held-out samples
    assert picture.stat().st_size > 10_000
