"""The locality table's results: printed as two tables, drawn as pictures, written as JSON."""

from __future__ import annotations

import json
import math
import platform
from pathlib import Path
from typing import NamedTuple

import torch
from torch import Tensor

from benchmarks.face_regions import REGIONS
from benchmarks.locality.protocol import ROIR_CAP, Choice, Method, Samples, Scores
from panda_lightning.files import write_atomically
from panda_lightning.images import part_colours, save_png, tile


class Row(NamedTuple):
    """A method, its chosen edit per region (``None``: none reached the target change), and
    that edit's scores on the test set."""

    method: Method
    choices: dict[str, Choice | None]
    results: dict[str, Scores | None]


def machine() -> dict[str, str | int]:
    """What the run ran on."""
    return {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "machine": platform.machine(),
        "processor": platform.processor(),
        "python": platform.python_version(),
    }


# -- printed ---------------------------------------------------------------------------------


def print_tables(rows: list[Row], num_test: int) -> None:
    width = max(len(method.name) for method, _, _ in rows)
    print(
        f"\nROIR (lower is more local), mean +- std over all {num_test} test samples, each term capped at {ROIR_CAP:g} "
        "(a sample whose region is unchanged scores the cap); training time"
    )
    print(f"{'method':<{width}} | " + " | ".join(f"{region:^13}" for region in REGIONS) + " | training")
    for method, _, results in rows:
        cells = " | ".join(
            f"{r.ratios.mean():5.2f} +- {r.ratios.std():4.2f}" if r else f"{'n/a':^13}" for r in results.values()
        )
        print(f"{method.name:<{width}} | {cells} | {method.seconds:7.2f} s")
    print(
        "\nchosen edits: candidate (of how many), strength; on the test set: median ROIR, RMS change in the "
        f"region, samples left unchanged, samples at the cap of {ROIR_CAP:g} (the unchanged among them)"
    )
    for method, choices, results in rows:
        for region, choice in choices.items():
            result = results[region]
            if choice is None:
                print(f"{method.name:<{width}} {region:<10} none of its best edits changes the region by the target")
                continue
            print(
                f"{method.name:<{width}} {region:<10} {choice.candidate.label:<32} (of {choice.screened:>4}) "
                f"alpha {choice.alpha:7.3f} | median {result.ratios.median():5.2f}  change {result.changes.mean():.3f}  "
                f"unchanged {result.unchanged}  capped {int((result.ratios >= ROIR_CAP).sum())}"
            )


# -- pictures --------------------------------------------------------------------------------


def write_pictures(directory: Path, rows: list[Row], samples: Samples) -> None:
    """``regions.png``: the faces, then each with its regions painted over it (eyes, nose, mouth,
    background in the colours of ``part_colours(4)``). ``edits_<region>.png``: a row per
    method, in the table's order, below the faces; each face edited by the method's chosen
    edit for the region (unedited where it has none), beside the size of the change (white:
    0.25 or more, images in [0, 1])."""
    directory.mkdir(parents=True, exist_ok=True)
    images, colours = samples.images, part_colours(len(REGIONS))
    painted = images.mean(dim=1, keepdim=True).expand_as(images).clone()
    for r, colour in enumerate(colours):
        weight = 0.6 * samples.regions[:, r : r + 1]
        painted = (1 - weight) * painted + weight * colour.view(1, 3, 1, 1)
    save_png(tile(torch.stack([images, painted], dim=1)), directory / "regions.png")
    for region in REGIONS:
        cells = [torch.stack([images, painted], dim=1).flatten(0, 1)]
        for _, choices, _ in rows:
            choice = choices[region]
            if choice is None:
                edited = images
            else:
                edited = choice.candidate.edit(samples, choice.alpha)
            change = ((edited - images).abs().mean(dim=1, keepdim=True) / 0.25).clamp(0, 1).expand_as(images)
            cells.append(torch.stack([edited, change], dim=1).flatten(0, 1))
        save_png(tile(torch.stack(cells)), directory / f"edits_{region}.png")
    print(f"pictures: {directory}/regions.png, edits_<region>.png")


# -- JSON ------------------------------------------------------------------------------------


def number(value: Tensor | float) -> float | None:
    """A finite number as it is, anything else (the mean of no samples) as ``None``: JSON has no NaN."""
    value = float(value)
    return value if math.isfinite(value) else None


def edit_results(choice: Choice, scores: Scores) -> dict:
    """The chosen edit and its scores on the test set; ROIR over every sample, terms capped."""
    ratios = scores.ratios
    return {
        "candidate": choice.candidate.label,
        "screened": choice.screened,
        "strength": choice.alpha,
        "selection_roir": number(choice.selection_roir),
        "roir": {"mean": number(ratios.mean()), "std": number(ratios.std()), "median": number(ratios.median())},
        "change": number(scores.changes.mean()),  # the matched change, mean RMS change in the region
        "samples": len(scores.changes),
        "unchanged": scores.unchanged,
        "capped": int((ratios >= ROIR_CAP).sum()),  # the unchanged among them
    }


def results(rows: list[Row], settings: dict) -> dict:
    """The run as one object: its settings, then per method, in the table's order, its name,
    training time and per region its chosen edit's results (``None`` where it has none)."""
    return {
        "settings": settings,
        "regions": list(REGIONS),
        "methods": [
            {
                "name": method.name,
                "training_seconds": method.seconds,
                "regions": {
                    region: None if choice is None else edit_results(choice, outcomes[region])
                    for region, choice in choices.items()
                },
            }
            for method, choices, outcomes in rows
        ],
    }


def write_json(content: dict, path: Path) -> None:
    """``content`` to ``path`` atomically: a temp file in the same folder, then renamed over it."""
    write_atomically(path, lambda file: file.write(json.dumps(content, indent=2, allow_nan=False) + "\n"), mode="w")
    print(f"results: {path}")
