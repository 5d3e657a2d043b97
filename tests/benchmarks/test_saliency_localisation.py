"""``benchmarks/evidence/saliency_localisation.py``: the thresholded saliency of Sec. 5.1.2 against face regions."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import torch

from benchmarks.evidence.saliency_localisation import best_localisations, mean_iou

from conftest import ROOT


def test_the_best_localisation_is_found_with_its_sign():
    region = torch.zeros(2, 8, 8, dtype=torch.bool)
    region[:, 2:6, 2:6] = True
    located = torch.zeros(2, 3, 8, 8, dtype=torch.bool)
    located[:, 0, :4] = True  # half of the region, and as much outside
    located[:, 1] = ~region  # the region's complement: appearance 1 with the opposite sign
    located[:, 2, 2:6, 2:4] = True  # half of the region, nothing outside
    assert mean_iou(located, region).tolist() == pytest.approx([8 / 40, 0.0, 0.5])
    assert best_localisations(located, {"square": region, "ring": ~region}) == {"square": (1, "-", 1.0), "ring": (1, "+", 1.0)}


@pytest.mark.slow
def test_the_benchmark_prints_each_region_and_the_face_is_found_better_than_by_the_whole_image(eval_python, tmp_path):
    picture = tmp_path / "saliency.png"
    command = [sys.executable, "-m", "benchmarks.evidence.saliency_localisation", "--quick", "--eval_python", str(eval_python),
               "--picture", str(picture)]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = {name: (sign, int(k), float(iou), float(whole)) for name, sign, k, iou, whole in
            re.findall(r"^(\w+) +[0-9.]+ +([+-])(\d+) +([0-9.]+) +([0-9.]+)$", result.stdout, re.M)}
    assert set(rows) == {"face", "background", "eyes", "nose", "mouth"}
    assert all(0 <= k < 8 for _, k, _, _ in rows.values())
    sign, _, iou, whole = rows["face"]
    assert iou > 1.5 * whole  # the first appearances localise the face, if coarsely
    assert picture.stat().st_size > 10_000
