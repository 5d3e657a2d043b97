"""PandA's parts from coarse to fine: the number of parts ``R_S`` swept on the README's face generator.

    python -m benchmarks.evidence.rank_sweep [--ranks 4 8 16 32 64] [--steps 500] [--quick] [--picture docs/rank_sweep.png]

Fits PandA (Algorithm 1, ``R_C = C``, from the same HOSVD start) at each rank on the same
activations, and prints its held-out relative error and the measures of ``benchmarks.evidence.ablations``
(overlap, concentration, edit ratio). ``--picture``: one row of samples, then one row of parts
per rank (each pixel in the colour of its strongest part).
"""

from __future__ import annotations

import argparse
import statistics

from benchmarks.evidence.ablations import (
    QUICK,
    Variant,
    add_fit_arguments,
    algorithm_1,
    concentration,
    edit_ratios,
    face_activations,
    initial_factors,
    overlap,
    relative_error,
)
from panda_lightning.callbacks.rendering import generated_cells
from panda_lightning.functional.factorization import unfold
from panda_lightning.images import refinement_grid, save_png


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.evidence.rank_sweep", description=__doc__.splitlines()[0])
    add_fit_arguments(parser, edit_samples=8)
    parser.add_argument("--ranks", type=int, nargs="+", default=[4, 8, 16, 32, 64])
    parser.add_argument("--quick", action="store_true", help="ranks 4 and 8, 50 steps, 256 + 64 samples, 2 edited samples")
    parser.add_argument("--picture", help="write the parts at each rank to this PNG")
    args = parser.parse_args(argv)
    if args.quick:
        vars(args).update(QUICK, ranks=[4, 8])

    datamodule, maps, test, scale = face_activations(args.layer, args.train_samples, args.test_samples)
    train = unfold(maps)
    print(f"PhotoFaceDCGAN {args.layer} {tuple(maps.shape[1:])}: {args.train_samples} training and {args.test_samples} "
          f"test samples, {args.steps} steps of Algorithm 1, edits of {args.edit_samples} samples")
    print(f"{'parts':>5} {'error':>7} {'overlap':>8} {'concentration':>14} {'edit ratio':>11}")
    fitted = []
    for rank in args.ranks:
        A, initial = initial_factors(train, rank)
        _, P = algorithm_1(train, A, initial, args.steps)
        variant = Variant(f"{rank} parts", A, P)
        ratios = edit_ratios(datamodule, variant, scale, range(args.edit_samples))
        print(f"{rank:5d} {relative_error(test, variant):7.4f} {overlap(P):8.3f} {concentration(P):14.3f} "
              f"{statistics.median(ratios):11.2f}", flush=True)
        fitted.append(variant)
    if args.picture:
        _, height, width = datamodule.feature_shape
        images = generated_cells(datamodule.generator, datamodule.generator.preview_latents(4, seed=0))
        grid = refinement_grid(images, [variant.parts for variant in fitted], height, width, [v.name for v in fitted])
        print(f"wrote {save_png(grid, args.picture)}")


if __name__ == "__main__":
    main()
