"""The paper's Table 2 on the bundled face generator: how local PandA's edits are, against
SeFa, GANSpace, k-means parts, LowRankGAN and ReSeFa, with face regions that PandA did not produce.

    make locality-table        (sets up .venv-eval with MediaPipe, then runs this)
    python -m benchmarks.evidence.locality [--budget 20] [--target 0.1] [--select_by median] [--splits 3]
        [--variants budget=8 target=0.2 grow=2 ...] [--panda main.8:16 ...] [--pictures DIR] [--json PATH] [--quick]

Trains every method, draws the samples, chooses each method's edit per region and tests it, as
:mod:`benchmarks.evidence.locality.protocol` describes (docs/locality.md in full); prints the table, then
runs the protocol again on other selection/test splits and under each variant, and prints the
medians of every run; writes the pictures (``--pictures``) and the results (``--json``).
"""

from __future__ import annotations

import argparse
import ctypes
import time
from pathlib import Path

import torch

from benchmarks.evidence.face_regions import REGIONS
from benchmarks.evidence.locality.methods import (
    FIT_SEED, fit_panda, panda_method, train_ganspace, train_kmeans, train_region_directions, train_sefa,
)
from benchmarks.evidence.locality.protocol import (
    ROIR_CAP,
    SEED,
    SELECTION_STREAM,
    STATISTICS,
    TEST_STREAM,
    TRAINING_STREAM,
    UNCHANGED,
    Method,
    Samples,
    Setting,
    choose,
    draw_samples,
    resplit,
    scores_of,
    variant,
)
from benchmarks.evidence.locality.report import Row, Run, machine, print_robustness, print_tables, results, write_json, write_pictures
from panda_lightning.generators import FaceDCGAN, PhotoFaceDCGAN

# Both are 64x64 DCGANs of the same layout (main.2 ... main.11), which every method here assumes.
VARIED = [("main.8", 16), ("main.8", 64)]  # the PandA fits that run in the splits and variants unless --vary says
GENERATORS = {"face_dcgan": ("face DCGAN (DigiFace1M)", FaceDCGAN), "photo_faces": ("face-photo DCGAN (generateme)", PhotoFaceDCGAN)}


def layer_and_parts(spec: str) -> tuple[str, int]:
    layer, _, parts = spec.partition(":")
    if not layer or not parts.isdigit() or int(parts) < 1:
        raise argparse.ArgumentTypeError(f"{spec!r} is not LAYER:PARTS, such as main.8:16.")
    return layer, int(parts)


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.evidence.locality", description=__doc__.splitlines()[0])
    parser.add_argument("--generator", choices=list(GENERATORS), default="face_dcgan", help="the 64x64 face generator")
    parser.add_argument("--only_panda", action="store_true", help="the PandA rows alone, without the other methods")
    parser.add_argument("--selection", type=int, default=256, help="samples drawn for choosing each method's edit")
    parser.add_argument("--test", type=int, default=1100, help="samples drawn for the table (those with a face kept count)")
    parser.add_argument("--screen", type=int, default=64, help="selection samples that every candidate is ranked on")
    parser.add_argument("--finalists", type=int, default=4, help="candidates per method and region set to the target change")
    parser.add_argument("--budget", type=int, default=20, help="candidate edits per method and region, the same for all")
    parser.add_argument("--target", type=float, default=0.1, help="RMS change inside the region, images in [0, 1]")
    parser.add_argument("--select_by", choices=STATISTICS, default="median", help="the selection set's statistic an edit is chosen by")
    parser.add_argument("--grow", type=int, default=0, help="pixels by which MediaPipe's regions are grown")
    parser.add_argument("--splits", type=int, default=3, help="selection/test splits: the sets as drawn, then random partitions")
    parser.add_argument(
        "--variants", nargs="*", default=["budget=8", "budget=40", "target=0.05", "target=0.2", "grow=2", "select_by=capped mean"],
        metavar="NAME=VALUE", help="the protocol run again with one choice changed (budget, target, select_by, grow)",
    )
    parser.add_argument("--directions", type=int, default=20, help="SeFa's and GANSpace's directions")
    parser.add_argument(
        "--panda", type=layer_and_parts, nargs="+", default=[("main.8", 16), ("main.8", 32), ("main.8", 64), ("main.5", 16), ("main.11", 32)],
        metavar="LAYER:PARTS", help="PandA fits; the first is also edited at the region's mask",
    )
    parser.add_argument(
        "--vary", type=layer_and_parts, nargs="*", default=None, metavar="LAYER:PARTS",
        help="those of the --panda fits that also run in the splits and variants, with every other method and PandA at "
        "the region's mask (default: main.8:16 and main.8:64 where --panda has them, else the first --panda fit)",
    )
    parser.add_argument(
        "--refined", type=layer_and_parts, nargs="*", default=[("main.8", 16), ("main.8", 64)], metavar="LAYER:PARTS",
        help="those of the --panda fits also edited at each sample's refined parts (mutual kNN)",
    )
    parser.add_argument("--kmeans_clusters", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--appearances", type=int, default=32, help="appearances tried: PandA's first, k-means' largest clusters'")
    parser.add_argument("--ganspace_samples", type=int, default=4096)
    parser.add_argument("--kmeans_samples", type=int, default=256)
    parser.add_argument(
        "--region_samples", type=int, default=128,
        help="samples drawn (those with a face found count) whose Jacobians LowRankGAN and ReSeFa are trained on",
    )
    parser.add_argument("--region_directions", type=int, default=20, help="LowRankGAN's and ReSeFa's directions per region")
    parser.add_argument("--max_steps", type=int, default=5000, help="of each PandA fit (it stops at convergence)")
    parser.add_argument("--eval_python", default=".venv-eval/bin/python", help="Python of the environment with MediaPipe")
    parser.add_argument("--pictures", type=Path, default=None, help="a folder to write regions.png and edits_<region>.png to")
    parser.add_argument("--json", type=Path, default=None, help="a file to write the results to, as JSON (atomically)")
    parser.add_argument("--quick", action="store_true", help="a small run to check that everything works (minutes)")
    args = parser.parse_args(argv)
    if args.quick:
        args.selection, args.test, args.screen, args.finalists = 48, 48, 16, 2
        args.directions, args.appearances, args.ganspace_samples, args.max_steps = 4, 4, 256, 30
        args.region_samples, args.region_directions, args.kmeans_clusters = 4, 4, [8, 16]
        args.panda, args.refined, args.vary = [("main.8", 16), ("main.8", 64)], [("main.8", 16)], [("main.8", 16)]
        args.budget, args.splits, args.variants = 8, 2, ["budget=4", "grow=1", "select_by=capped mean"]
    if args.vary is None:
        args.vary = [fit for fit in args.panda if fit in VARIED] or args.panda[:1]
    for name, fits in (("--refined", args.refined), ("--vary", args.vary)):
        if not set(fits) <= set(args.panda):
            parser.error(f"{name} {fits} must be among the --panda fits {args.panda}.")
    if args.splits < 1:
        parser.error(f"--splits={args.splits} must be 1 or more: split 0 is the sets as drawn.")
    try:
        args.setting = Setting(args.budget, args.target, args.select_by, args.grow)
        args.variant_settings = [variant(args.setting, change) for change in args.variants]
    except ValueError as error:
        parser.error(str(error))
    budgets = [setting.budget for setting in [args.setting, *args.variant_settings]]
    most = min(2 * args.directions, 2 * args.region_directions, 2 * args.appearances)
    if max(budgets) > most:
        parser.error(
            f"a budget of {max(budgets)} is more than some methods have: {2 * args.directions} candidates for "
            f"--directions {args.directions}, {2 * args.region_directions} for --region_directions {args.region_directions}, "
            f"{2 * args.appearances} at the region's own mask for --appearances {args.appearances}."
        )
    # Checked now rather than after the run's half an hour.
    if args.json is not None and args.json.is_dir():
        parser.error(f"--json={args.json} is a folder; it must name the file to write.")
    if args.pictures is not None and args.pictures.exists() and not args.pictures.is_dir():
        parser.error(f"--pictures={args.pictures} is a file; it must name a folder.")
    return args


def run_settings(args: argparse.Namespace, drawn: dict, ran_on: dict) -> dict:
    """What the results depend on besides the methods: arguments, samples, seeds and machine."""
    return {
        "arguments": {
            name: str(value) if isinstance(value, Path) else value
            for name, value in vars(args).items() if name not in ("setting", "variant_settings")
        },
        "samples": drawn,
        "seeds": {
            "samples": SEED, "selection_stream": SELECTION_STREAM, "test_stream": TEST_STREAM,
            "training_stream": TRAINING_STREAM, "panda_fits": FIT_SEED,
        },
        "unchanged_below": UNCHANGED,
        "roir_cap": ROIR_CAP,
        "machine": ran_on,
    }


def train_methods(generator: FaceDCGAN, args: argparse.Namespace) -> list[Method]:
    """Every method of the table, trained and timed, in the table's order."""
    methods = []
    if not args.only_panda:
        # LowRankGAN and ReSeFa train on regions: those of faces drawn from the training stream, for
        # every region definition the runs use.
        region_training, _ = draw_samples(generator, args.region_samples, TRAINING_STREAM, args.eval_python)
        grows = tuple(sorted({setting.grow for setting in [args.setting, *args.variant_settings]}))
        methods = [
            train_ganspace(generator, args.directions, args.ganspace_samples),
            train_sefa(generator, args.directions),
            *[
                train_kmeans(generator, "main.8", clusters, args.kmeans_samples, args.appearances)
                for clusters in args.kmeans_clusters
            ],
            *train_region_directions(generator, region_training, args.region_directions, grows),
        ]
    for i, (layer, parts_rank) in enumerate(args.panda):
        model, seconds = fit_panda(generator, layer, parts_rank, args.max_steps)
        varied = (layer, parts_rank) in args.vary
        methods.append(panda_method(generator, model, seconds, args.appearances, varied=varied))
        if (layer, parts_rank) in args.refined:
            methods.append(panda_method(generator, model, seconds, args.appearances, refine="mutual_knn", varied=False))
        if i == 0:  # a mask given by hand: how local the appearances alone are
            methods.append(panda_method(generator, model, seconds, args.appearances, at_regions=True))
    return methods


class SampleSets:
    """The screening, selection and test sets of each split and region definition, made once, so
    that the runs that share them share what is computed on them."""

    def __init__(self, selection: Samples, testing: Samples, screen: int):
        self.selection, self.testing, self.screen = selection, testing, screen
        self.sets: dict[tuple[int, int], tuple[Samples, Samples, Samples]] = {}

    def __call__(self, split: int, grow: int) -> tuple[Samples, Samples, Samples]:
        if (split, grow) not in self.sets:
            if grow:
                _, selection, testing = self(split, 0)
                selection, testing = selection.with_regions_grown(grow), testing.with_regions_grown(grow)
            else:
                selection, testing = resplit(self.selection, self.testing, split)
            self.sets[(split, grow)] = (selection.subset(0, self.screen), selection, testing)
        return self.sets[(split, grow)]


def run_protocol(methods: list[Method], sets: SampleSets, setting: Setting, split: int, finalists: int) -> Run:
    screening, selection, testing = sets(split, setting.grow)
    rows = []
    for method in methods:
        start = time.perf_counter()
        choices = choose(method, screening, selection, setting, finalists)
        outcomes = {region: choice and scores_of(choice, testing) for region, choice in choices.items()}
        rows.append(Row(method, choices, outcomes))
        print(f"  {method.name}: chosen and tested in {time.perf_counter() - start:.0f} s", flush=True)
    return Run(setting, split, rows)


def return_freed_memory_to_the_system() -> None:
    """Serve allocations of 1 MiB or more straight from the system (glibc's ``mallopt``), so that
    a freed tensor's memory goes back to it. With glibc's default, which raises the threshold as
    large blocks are freed, the images of many sizes that the runs make fragment its heap: the
    process grew by about 1 GB per split and ran out of 24 GB before the variants. No-op where
    the C library is not glibc."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    M_MMAP_THRESHOLD = -3
    libc.mallopt(M_MMAP_THRESHOLD, 1 << 20)


def run(args: argparse.Namespace) -> None:
    return_freed_memory_to_the_system()
    torch.set_grad_enabled(False)
    described, make_generator = GENERATORS[args.generator]
    generator = make_generator().eval().requires_grad_(False)
    ran_on = machine()
    print(
        f"torch {ran_on['torch']}, {ran_on['threads']} threads, {ran_on['machine']}; {described} 64x64",
        flush=True,
    )
    selection, dropped_selection = draw_samples(generator, args.selection, SELECTION_STREAM, args.eval_python)
    testing, dropped_test = draw_samples(generator, args.test, TEST_STREAM, args.eval_python)
    drawn = {
        "selection": {"drawn": args.selection, "kept": len(selection), "dropped": dict(dropped_selection), "screened_on": args.screen},
        "test": {"drawn": args.test, "kept": len(testing), "dropped": dict(dropped_test)},
    }
    for name, counts in drawn.items():
        dropped = ", ".join(f"{reason} {count}" for reason, count in sorted(counts["dropped"].items()))
        print(f"{name} samples: {counts['kept']} of {counts['drawn']} kept ({dropped or 'none dropped'})", flush=True)
    print("region shares " + ", ".join(f"{r} {testing.regions[:, i].mean():.1%}" for i, r in enumerate(REGIONS)), flush=True)

    methods = train_methods(generator, args)
    for method in methods:
        print(f"  {method.name}: trained in {method.seconds:.2f} s", flush=True)
    sets = SampleSets(selection, testing, args.screen)
    setting = args.setting
    print(
        f"the protocol as set: {setting.budget} candidates per method and region, target change {setting.target:g}, "
        f"chosen by the {setting.select_by}, regions grown by {setting.grow} pixels; split 0", flush=True,
    )
    runs = [run_protocol(methods, sets, args.setting, 0, args.finalists)]
    print_tables(runs[0], len(testing))
    varied = [method for method in methods if method.varied]
    for split in range(1, args.splits):
        print(f"split {split}", flush=True)
        runs.append(run_protocol(varied, sets, args.setting, split, args.finalists))
    for setting in args.variant_settings:
        print(f"variant: {setting.differences(args.setting)}", flush=True)
        runs.append(run_protocol(varied, sets, setting, 0, args.finalists))
    if len(runs) > 1:
        print_robustness(runs)
    if args.json:
        write_json(results(runs, run_settings(args, drawn, ran_on)), args.json)
    if args.pictures:
        write_pictures(args.pictures, runs[0].rows, testing.subset(0, 4))


def main(argv: list[str] | None = None) -> None:
    run(parse_arguments(argv))


if __name__ == "__main__":
    main()
