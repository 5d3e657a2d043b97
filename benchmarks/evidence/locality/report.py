"""The locality table's results: printed (the table as set, its chosen edits, the medians of
every split and variant), drawn as pictures, written as JSON."""

from __future__ import annotations

import dataclasses
import json
import math
import platform
from pathlib import Path
from typing import NamedTuple

import torch
from torch import Tensor

from benchmarks.evidence.face_regions import REGIONS
from benchmarks.evidence.locality.protocol import ROIR_CAP, Choice, Method, Samples, Scores, Setting
from panda_lightning.files import write_atomically
from panda_lightning.images import part_colours, save_png, tile


class Row(NamedTuple):
    """A method, its chosen edit per region (``None``: none reached the target change), and
    that edit's scores on the test set."""

    method: Method
    choices: dict[str, Choice | None]
    results: dict[str, Scores | None]


class Run(NamedTuple):
    """The protocol run once: under ``setting``, on selection/test split ``split``."""

    setting: Setting
    split: int
    rows: list[Row]


def machine() -> dict[str, str | int]:
    """What the run ran on."""
    return {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "machine": platform.machine(),
        "processor": platform.processor(),
        "python": platform.python_version(),
    }


# -- statistics ------------------------------------------------------------------------------

BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED = 2000, 0


def median_interval(values: Tensor, level: float = 0.95) -> tuple[float, float]:
    """The percentile bootstrap interval of the median of ``values: (N,)``: ``BOOTSTRAP_RESAMPLES``
    resamples of the samples with replacement, seeded, the central ``level`` of their medians."""
    generator = torch.Generator().manual_seed(BOOTSTRAP_SEED)
    resampled = values[torch.randint(len(values), (BOOTSTRAP_RESAMPLES, len(values)), generator=generator)]
    medians = resampled.median(dim=1).values.double()
    low, high = torch.quantile(medians, torch.tensor([(1 - level) / 2, (1 + level) / 2], dtype=torch.float64))
    return low.item(), high.item()


def plain_mean(scores: Scores) -> float:
    """Eq. 13's mean over the samples whose region the edit changed, its terms uncapped (at the
    others the ratio is 0/0 or infinite; they are counted apart)."""
    changed = scores.plain[~scores.unchanged_samples]
    return changed.mean().item() if len(changed) else math.nan


# -- printed ---------------------------------------------------------------------------------


def name_width(rows: list[Row]) -> int:
    return max(len(row.method.name) for row in rows)


def print_tables(run: Run, num_test: int) -> None:
    """The table of the run as set: per method and region the median ROIR with its 95% interval,
    then each chosen edit with every statistic of its test scores."""
    rows, setting, width = run.rows, run.setting, name_width(run.rows)
    print(
        f"\nROIR (lower is more local): median [95% bootstrap interval] over all {num_test} test samples, "
        f"each term capped at {ROIR_CAP:g} (a sample whose region is unchanged scores the cap); "
        f"{setting.budget} candidates per method and region, target change {setting.target:g}, chosen by the "
        f"{setting.select_by}; training time"
    )
    print(f"{'method':<{width}} | " + " | ".join(f"{region:^17}" for region in REGIONS) + " | training")
    for method, _, results in rows:
        cells = " | ".join(
            "{:5.2f} [{:4.2f}, {:4.2f}]".format(r.ratios.median().item(), *median_interval(r.ratios)) if r
            else f"{'n/a':^17}"
            for r in results.values()
        )
        print(f"{method.name:<{width}} | {cells} | {method.seconds:7.2f} s")
    print(
        f"\nchosen edits: candidate (passed the screen of {setting.budget}), strength, {setting.select_by} on the "
        "selection set; on the test set: Eq. 13's plain mean over the samples changed, the capped mean +- std, "
        f"the median, the RMS change in the region, samples at the cap of {ROIR_CAP:g} and, of them, unchanged"
    )
    for method, choices, results in rows:
        for region, choice in choices.items():
            r = results[region]
            if choice is None:
                print(f"{method.name:<{width}} {region:<10} none of its candidates changes the region by the target")
                continue
            print(
                f"{method.name:<{width}} {region:<10} {choice.candidate.label:<32} ({choice.screened:>2}) "
                f"alpha {choice.alpha:6.3f} sel {choice.selection_statistic:5.2f} | plain {plain_mean(r):7.2f} "
                f"capped {r.roir:5.2f} +- {r.ratios.std():4.2f} median {r.ratios.median():5.2f} "
                f"change {r.changes.mean():.3f} capped {int((r.ratios >= ROIR_CAP).sum()):>3} unchanged {r.unchanged:>3}"
            )


def medians(run: Run) -> dict[str, dict[str, float | None]]:
    """Per method name and region, the test median (``None`` where no edit reached the target)."""
    return {
        row.method.name: {region: None if r is None else r.ratios.median().item() for region, r in row.results.items()}
        for row in run.rows
    }


def print_robustness(runs: list[Run]) -> None:
    """The medians of the methods that every run has, per region: a column per run (the splits
    of the setting as set, then its variants), and for each PandA row the number of runs in
    which its median is below every other method's."""
    first = runs[0]
    names = [row.method.name for row in first.rows if all(row.method.name in medians(run) for run in runs)]
    width = max(len(name) for name in names)
    labels = [
        f"split {run.split}" if run.setting == first.setting else run.setting.differences(first.setting) for run in runs
    ]
    print("\nmedian test ROIR per run: the splits of the selection and test samples, then the protocol's variants")
    for i, label in enumerate(labels):
        print(f"  ({i + 1}) {label}")
    found = [medians(run) for run in runs]
    for region in REGIONS:
        print(f"{region:<{width}} | " + " ".join(f"{f'({i + 1})':>5}" for i in range(len(runs))))
        for name in names:
            cells = " ".join(f"{m[name][region]:5.2f}" if m[name][region] is not None else "  n/a" for m in found)
            print(f"{name:<{width}} | {cells}")
    given = [name for name in names if "at the region's mask" in name or name.startswith(("LowRankGAN", "ReSeFa"))]
    rivals = [name for name in names if not name.startswith("PandA")]
    if not rivals:
        return
    print(
        f"\nruns of {len(runs)} in which a PandA row's median is below every other method's "
        "(those given the region, LowRankGAN and ReSeFa, included)"
    )
    for name in names:
        if not name.startswith("PandA"):
            continue
        wins = {
            region: sum(
                m[name][region] is not None
                and all(m[rival][region] is None or m[name][region] < m[rival][region] for rival in rivals)
                for m in found
            )
            for region in REGIONS
        }
        note = " (given the region)" if name in given else ""
        print(f"{name:<{width}} | " + "  ".join(f"{region} {wins[region]}/{len(runs)}" for region in REGIONS) + note)


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
    """The chosen edit and its scores on the test set, every statistic the tables print."""
    ratios = scores.ratios
    low, high = median_interval(ratios)
    return {
        "candidate": choice.candidate.label,
        "screened": choice.screened,
        "strength": choice.alpha,
        "selection_statistic": number(choice.selection_statistic),
        "roir": {
            "plain_mean": number(plain_mean(scores)),  # Eq. 13 over the samples changed, uncapped
            "capped_mean": number(ratios.mean()),
            "capped_std": number(ratios.std()),
            "median": number(ratios.median()),
            "median_interval": [number(low), number(high)],
        },
        "change": number(scores.changes.mean()),  # the matched change, mean RMS change in the region
        "samples": len(scores.changes),
        "unchanged": scores.unchanged,
        "capped": int((ratios >= ROIR_CAP).sum()),  # the unchanged among them
    }


def run_results(run: Run) -> dict:
    """One run: its setting and split, then per method, in the table's order, its name, training
    time and per region its chosen edit's results (``None`` where it has none)."""
    return {
        "setting": dataclasses.asdict(run.setting),
        "split": run.split,
        "methods": [
            {
                "name": method.name,
                "training_seconds": method.seconds,
                "regions": {
                    region: None if choice is None else edit_results(choice, outcomes[region])
                    for region, choice in choices.items()
                },
            }
            for method, choices, outcomes in run.rows
        ],
    }


def results(runs: list[Run], settings: dict) -> dict:
    """Every run as one object, the first the table as set, with the settings they share."""
    return {"settings": settings, "regions": list(REGIONS), "runs": [run_results(run) for run in runs]}


def write_json(content: dict, path: Path) -> None:
    """``content`` to ``path`` atomically: a temp file in the same folder, then renamed over it."""
    write_atomically(path, lambda file: file.write(json.dumps(content, indent=2, allow_nan=False) + "\n"), mode="w")
    print(f"results: {path}")
