"""The paper's Table 2 on the bundled face generator: how local PandA's edits are, against
SeFa, GANSpace, k-means parts, LowRankGAN and ReSeFa, with face regions that PandA did not produce.

    make locality-table        (sets up .venv-eval with MediaPipe, then runs this; ~54 min)
    python -m benchmarks.locality [--selection 256] [--test 1100] [--target 0.1]
        [--panda main.8:16 ...] [--refined main.8:16 ...] [--pictures DIR] [--json PATH] [--quick]

Trains every method, draws the samples, chooses each method's edit per region and tests it,
as :mod:`benchmarks.locality.protocol` describes; prints the table and the chosen edits, and
writes the pictures (``--pictures``) and the results (``--json``).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from benchmarks.face_regions import REGIONS
from benchmarks.locality.methods import (
    FIT_SEED, fit_panda, panda_method, train_ganspace, train_kmeans, train_region_directions, train_sefa,
)
from benchmarks.locality.protocol import (
    ROIR_CAP,
    SEED,
    SELECTION_STREAM,
    TEST_STREAM,
    TRAINING_STREAM,
    UNCHANGED,
    Method,
    Samples,
    choose,
    draw_samples,
    scores_of,
)
from benchmarks.locality.report import Row, machine, print_tables, results, write_json, write_pictures
from panda_lightning.generators import FaceDCGAN, PhotoFaceDCGAN

# Both are 64x64 DCGANs of the same layout (main.2 ... main.11), which every method here assumes.
GENERATORS = {"face_dcgan": ("face DCGAN (DigiFace1M)", FaceDCGAN), "photo_faces": ("face-photo DCGAN (generateme)", PhotoFaceDCGAN)}


def layer_and_parts(spec: str) -> tuple[str, int]:
    layer, _, parts = spec.partition(":")
    if not layer or not parts.isdigit() or int(parts) < 1:
        raise argparse.ArgumentTypeError(f"{spec!r} is not LAYER:PARTS, such as main.8:16.")
    return layer, int(parts)


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.locality", description=__doc__.splitlines()[0])
    parser.add_argument("--generator", choices=list(GENERATORS), default="face_dcgan", help="the 64x64 face generator")
    parser.add_argument("--only_panda", action="store_true", help="the PandA rows alone, without the other methods")
    parser.add_argument("--selection", type=int, default=256, help="samples drawn for choosing each method's edit")
    parser.add_argument("--test", type=int, default=1100, help="samples drawn for the table (those with a face found count)")
    parser.add_argument("--screen", type=int, default=64, help="selection samples that every candidate is ranked on")
    parser.add_argument("--finalists", type=int, default=4, help="candidates per method and region set to the target change")
    parser.add_argument("--target", type=float, default=0.1, help="RMS change inside the region, images in [0, 1]")
    parser.add_argument("--directions", type=int, default=20, help="SeFa's and GANSpace's directions")
    parser.add_argument(
        "--panda", type=layer_and_parts, nargs="+", default=[("main.8", 16), ("main.8", 32), ("main.8", 64), ("main.5", 16), ("main.11", 32)],
        metavar="LAYER:PARTS", help="PandA fits; the first is also edited at the region's mask",
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
    parser.add_argument("--region_directions", type=int, default=10, help="LowRankGAN's and ReSeFa's directions per region")
    parser.add_argument("--max_steps", type=int, default=5000, help="of each PandA fit (it stops at convergence)")
    parser.add_argument("--eval_python", default=".venv-eval/bin/python", help="Python of the environment with MediaPipe")
    parser.add_argument("--pictures", type=Path, default=None, help="a folder to write regions.png and edits_<region>.png to")
    parser.add_argument("--json", type=Path, default=None, help="a file to write the results to, as JSON (atomically)")
    parser.add_argument("--quick", action="store_true", help="a small run to check that everything works (minutes)")
    args = parser.parse_args(argv)
    if args.quick:
        args.selection, args.test, args.screen, args.finalists = 48, 48, 16, 2
        args.directions, args.appearances, args.ganspace_samples, args.max_steps = 4, 4, 256, 30
        args.region_samples, args.region_directions, args.kmeans_clusters = 4, 2, [8, 16]
        args.panda, args.refined = [("main.8", 16), ("main.8", 64)], [("main.8", 16)]
    if not set(args.refined) <= set(args.panda):
        parser.error(f"--refined {args.refined} must be among the --panda fits {args.panda}.")
    # Checked now rather than after the run's half an hour.
    if args.json is not None and args.json.is_dir():
        parser.error(f"--json={args.json} is a folder; it must name the file to write.")
    if args.pictures is not None and args.pictures.exists() and not args.pictures.is_dir():
        parser.error(f"--pictures={args.pictures} is a file; it must name a folder.")
    return args


def run_settings(
    args: argparse.Namespace, selection: Samples, screening: Samples, testing: Samples, ran_on: dict
) -> dict:
    """What the results depend on besides the methods: arguments, samples, seeds and machine."""
    return {
        "arguments": {name: str(value) if isinstance(value, Path) else value for name, value in vars(args).items()},
        "samples": {
            "selection": {"drawn": args.selection, "with_a_face": len(selection), "screened_on": len(screening)},
            "test": {"drawn": args.test, "with_a_face": len(testing)},
        },
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
    # LowRankGAN and ReSeFa train on regions: those of faces drawn from the training stream.
    region_training = None if args.only_panda else draw_samples(generator, args.region_samples, TRAINING_STREAM, args.eval_python)
    methods = [] if args.only_panda else [
        train_ganspace(generator, args.directions, args.ganspace_samples),
        train_sefa(generator, args.directions),
        *[
            train_kmeans(generator, "main.8", clusters, args.kmeans_samples, args.appearances)
            for clusters in args.kmeans_clusters
        ],
        *train_region_directions(generator, region_training, args.region_directions),
    ]
    for i, (layer, parts_rank) in enumerate(args.panda):
        model, seconds = fit_panda(generator, layer, parts_rank, args.max_steps)
        methods.append(panda_method(generator, model, seconds, args.appearances))
        if (layer, parts_rank) in args.refined:
            methods.append(panda_method(generator, model, seconds, args.appearances, refine="mutual_knn"))
        if i == 0:  # a mask given by hand: how local the appearances alone are
            methods.append(panda_method(generator, model, seconds, args.appearances, at_regions=True))
    return methods


def run(args: argparse.Namespace) -> None:
    torch.set_grad_enabled(False)
    described, make_generator = GENERATORS[args.generator]
    generator = make_generator().eval().requires_grad_(False)
    ran_on = machine()
    print(
        f"torch {ran_on['torch']}, {ran_on['threads']} threads, {ran_on['machine']}; {described} 64x64; "
        f"target RMS change in the region {args.target}", flush=True,
    )
    selection = draw_samples(generator, args.selection, SELECTION_STREAM, args.eval_python)
    testing = draw_samples(generator, args.test, TEST_STREAM, args.eval_python)
    print(
        f"samples with a face found: selection {len(selection)} of {args.selection}, test {len(testing)} of {args.test}; "
        "region shares " + ", ".join(f"{r} {testing.regions[:, i].mean():.1%}" for i, r in enumerate(REGIONS)),
        flush=True,
    )

    methods = train_methods(generator, args)
    screening = selection.subset(0, args.screen)
    rows = []
    for method in methods:
        start = time.perf_counter()
        choices = choose(method, screening, selection, args.target, args.finalists)
        outcomes = {region: choice and scores_of(choice, testing) for region, choice in choices.items()}
        rows.append(Row(method, choices, outcomes))
        print(f"  {method.name}: trained in {method.seconds:.2f} s, chosen and tested in {time.perf_counter() - start:.0f} s", flush=True)
    print_tables(rows, len(testing))
    if args.json:
        write_json(results(rows, run_settings(args, selection, screening, testing, ran_on)), args.json)
    if args.pictures:
        write_pictures(args.pictures, rows, testing.subset(0, 4))


def main(argv: list[str] | None = None) -> None:
    run(parse_arguments(argv))


if __name__ == "__main__":
    main()
