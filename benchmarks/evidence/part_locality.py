"""ROIR (Eq. 13) of part edits on the bundled face generator: how local PandA's edits are.

    python -m benchmarks.evidence.part_locality --ckpt_path runs/dcgan_faces/version_0/checkpoints/last.ckpt
        [--samples 256] [--appearances 1 2 3] [--alpha 3.0] [--refine full|mutual_knn] [--num_neighbours 16]

For each part k and appearance j, edits ``--samples`` held-out samples at part k with
appearance j and measures ROIR with the part as the region of interest: the part upsampled to
the image and thresholded at half its maximum. Prints mean +- std over samples and
appearances, per part, with the median, the part's share of the image (ROIR scores a global
change by about sqrt((1 - share) / share), so small parts score high for the same leak), and how
many edits left their region unchanged. The locality table's rule
(:func:`benchmarks.evidence.locality.protocol.roir_and_unchanged`) counts every edit: a ROIR term is
capped at 10, and an edit whose region changed by an RMS below 1e-4 (images in ``[0, 1]``),
where ROIR is 0/0 or infinite, scores the cap. With ``--refine``, each sample is edited at its own refined part (Sec. 4.2-4.3), which
is then its region of interest.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from benchmarks.evidence.locality.protocol import roir_and_unchanged
from panda_lightning import PandA
from panda_lightning.datamodules import GeneratorActivations
from panda_lightning.functional.refinement import AFFINITIES
from panda_lightning.generators import FaceDCGAN
from panda_lightning.images import to_unit_range


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.evidence.part_locality", description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt_path", required=True)
    parser.add_argument("--samples", type=int, default=256)
    parser.add_argument("--appearances", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--alpha", type=float, default=3.0)
    parser.add_argument("--refine", choices=AFFINITIES, default=None, help="edit at each sample's refined parts")
    parser.add_argument("--num_neighbours", type=int, default=16)
    args = parser.parse_args()

    model = PandA.load_from_checkpoint(args.ckpt_path, map_location="cpu").eval()
    _, height, width = model.hparams.feature_shape
    datamodule = GeneratorActivations(FaceDCGAN(), layer=model.hparams.layer or "main.8", batch_size=64)
    refined = "" if args.refine is None else f", parts refined ({args.refine})"
    print(f"{args.ckpt_path}: layer {datamodule.layer}, {args.samples} samples, appearances {args.appearances}, alpha {args.alpha}{refined}")
    print(f"{'part':>4} {'share':>6} | ROIR mean +- std   median | region unchanged")
    for part in range(model.parts.shape[1]):
        ratios, unchanged, shares = [], 0, []
        for start in range(0, args.samples, 64):
            latents = datamodule.generator.held_out_latents(range(start, min(start + 64, args.samples)))
            parts = None
            if args.refine:
                parts = model.refine(datamodule.generator.activations(latents), args.refine, num_neighbours=args.num_neighbours)
            region = model.mask(part, parts).expand(len(latents), height, width)[:, None]
            region = (F.interpolate(region, size=(64, 64), mode="bilinear", align_corners=False) >= 0.5).float()
            shares.append(region.mean().item())
            edits = [lambda Z, j=j, k=part: model.local_edit(Z, [(k, j, args.alpha)], parts) for j in args.appearances]
            original, edited_batches = datamodule.generator.generate_with_edits(latents, edits)
            original = to_unit_range(original)
            for edited in map(to_unit_range, edited_batches):
                ratio, _, untouched = roir_and_unchanged(original, edited, region)
                unchanged += int(untouched.sum())
                ratios.append(ratio)
        ratios = torch.cat(ratios)
        print(
            f"{part:>4} {sum(shares) / len(shares):>6.1%} | {ratios.mean().item():>6.3f} +- {ratios.std().item():<6.3f} "
            f"{ratios.median().item():>6.3f} | {unchanged} of {len(ratios)}"
        )


if __name__ == "__main__":
    main()
