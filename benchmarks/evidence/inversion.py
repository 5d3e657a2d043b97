"""Photos inverted into the generator: how well, how fast, and how local an edit of one is.

    python -m benchmarks.evidence.inversion --ckpt_path RUN/checkpoints/last.ckpt
        [--samples 4] [--budgets 1 10] [--losses mse l1 mse+ms-ssim] [--alpha 3.0]

On the fit's generator and layer (``make fit``'s: the face-photo DCGAN at ``main.8``):

1. Reconstruction: PSNR and SSIM of the latent stage and of the layer stage, their steps and
   seconds, for ``--samples`` held-out generated images (whose latents are known: the mean is
   printed) and for the real photo (NASA's portrait of Eileen Collins, public domain, as
   scikit-image ships it, in its box ``135,5,190``), for each reconstruction loss, at each budget
   (a multiple of the default steps: the default against 10x shows what more steps would give).
2. Locality: each part edited with appearances 1, 2 and 3 at ``--alpha``, at the parts refined on
   each image (Algorithm 2, full affinity): the change inside the part's region (its refined mask
   over half its maximum) over the change outside it, and ROIR (Eq. 13) with that region, the
   median over edits, on the inverted photo (each loss) against the generated images; and, where
   MediaPipe's environment is (``make eval-env``), ROIR at the face's own regions (eyes, nose,
   mouth: the locality table's, found on the generator's images) of edits at each region's mask.
"""

from __future__ import annotations

import argparse
import statistics
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F

from benchmarks.evidence.face_regions import REGIONS
from benchmarks.evidence.locality.protocol import find_face_regions
from panda_lightning import PandA
from panda_lightning.functional.editing import part_mask
from panda_lightning.generators import FrozenGenerator
from panda_lightning.images import to_unit_range
from panda_lightning.inversion import LOSSES, InversionSettings, invert
from panda_lightning.metrics import roir_ratios
from panda_lightning.photos import Box, crop, load_photo
from panda_lightning.run import generator_from_config

ROOT = Path(__file__).resolve().parents[2]
PHOTO, BOX = ROOT / "tests" / "data" / "astronaut.png", Box(135, 5, 190)


def generator_of(ckpt_path: str) -> tuple[PandA, FrozenGenerator]:
    """The fit's model and its generator, from the ``config.yaml`` beside the checkpoint."""
    model = PandA.load_from_checkpoint(ckpt_path).eval()
    return model, generator_from_config(Path(ckpt_path).parents[1] / "config.yaml")


def scaled(settings: InversionSettings, budget: float) -> InversionSettings:
    return replace(settings, start_steps=round(settings.start_steps * budget), latent_steps=round(settings.latent_steps * budget),
                   layer_steps=round(settings.layer_steps * budget))


def locality(model: PandA, generator: FrozenGenerator, latents: torch.Tensor, activations: torch.Tensor, alpha: float) -> tuple[float, float]:
    """The median over parts and appearances 1-3 of (change inside / change outside) and of ROIR."""
    _, height, width = generator.feature_shape
    refined = model.refine(activations, "full")
    before = to_unit_range(generator.images_at(latents, activations).float())
    ratios, roirs = [], []
    for part in range(model.parts.shape[1]):
        region = F.interpolate(part_mask(refined, part, height, width).reshape(-1, 1, height, width), size=before.shape[-2:],
                               mode="bilinear", align_corners=False) > 0.5
        for appearance in (1, 2, 3):
            edited = model.local_edit(activations, [(part, appearance, alpha)], refined)
            after = to_unit_range(generator.images_at(latents, edited).float())
            change = (after - before).abs().sum(1, keepdim=True)
            keep = region.flatten(1).any(1) & (~region).flatten(1).any(1)
            inside = (change * region).flatten(1).sum(1) / region.flatten(1).sum(1).clamp_min(1)
            outside = (change * ~region).flatten(1).sum(1) / (~region).flatten(1).sum(1).clamp_min(1)
            ratios += (inside / outside.clamp_min(1e-12))[keep].tolist()
            roirs += roir_ratios(before, after, region.float())[keep].tolist()
    return statistics.median(ratios), statistics.median(roirs)


def region_roir(model: PandA, generator: FrozenGenerator, latents: torch.Tensor, activations: torch.Tensor, masks: torch.Tensor,
                alpha: float) -> dict[str, float]:
    """For each of MediaPipe's face regions (``masks: (N, 4, H_img, W_img)``, the images' own), the
    median ROIR of edits at the region's mask with appearances 1-3 (PandA at the region's mask, as
    in the locality table)."""
    before = to_unit_range(generator.images_at(latents, activations).float())
    medians = {}
    for index, region in enumerate(REGIONS[:3]):
        mask = masks[:, index].float()
        kept = mask.flatten(1).sum(1) > 0
        if not kept.any():
            continue
        roirs = []
        for appearance in (1, 2, 3):
            edited = model.local_edit(activations[kept], [(mask[kept].to(activations), appearance, alpha)])
            after = to_unit_range(generator.images_at(latents[kept], edited).float())
            roirs += roir_ratios(before[kept], after, mask[kept].to(after)).tolist()
        medians[region] = statistics.median(roirs)
    return medians


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.evidence.inversion", description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt_path", required=True, help="a fit (make fit's: runs/panda/version_0/checkpoints/last.ckpt)")
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--budgets", type=float, nargs="+", default=[1.0, 10.0])
    parser.add_argument("--losses", nargs="+", default=list(LOSSES), choices=LOSSES)
    parser.add_argument("--alpha", type=float, default=3.0)
    parser.add_argument("--eval_python", default=str(ROOT / ".venv-eval" / "bin" / "python"),
                        help="MediaPipe's environment (make eval-env), for ROIR at the face's regions; skipped where there is none")
    args = parser.parse_args(argv)
    model, generator = generator_of(args.ckpt_path)
    print(f"torch {torch.__version__}, cpu, {torch.get_num_threads()} threads; {type(generator.network).__name__} at "
          f"{generator.layer} {generator.feature_shape}; {args.samples} generated images and {PHOTO.name} (box {BOX})")
    with torch.no_grad():
        latents = generator.held_out_latents(range(1000, 1000 + args.samples))
        generated = to_unit_range(generator.generate(latents).float())
    photo = load_photo(PHOTO)
    target = crop(photo, BOX, generated.shape[-1])

    print("\nreconstruction (PSNR dB / SSIM; generated: the mean over the images)")
    print(f"{'target':10} {'loss':12} {'budget':>6} | {'latent stage':>34} | {'layer stage':>34}")
    inverted = {}
    for loss in args.losses:
        for budget in args.budgets:
            settings = scaled(InversionSettings(loss=loss), budget)
            for name, targets in (("generated", list(generated)), ("photo", [target])):
                results = []
                for each in targets:
                    results.append(invert(generator, each, settings))
                if budget == args.budgets[0]:
                    inverted[(name, loss)] = results
                cells = []
                for stage in ("latents", "layer"):
                    reports = [result.stages[stage] for result in results]
                    cells.append(f"{reports[0].steps:5} steps {statistics.mean(r.seconds for r in reports):5.1f} s "
                                 f"{statistics.mean(r.psnr for r in reports):6.2f} {statistics.mean(r.ssim for r in reports):.3f}")
                print(f"{name:10} {loss:12} {budget:6g} | {cells[0]:>34} | {cells[1]:>34}", flush=True)

    print(f"\nlocality of part edits (appearances 1-3, alpha {args.alpha}, at the parts refined on each image; the photo "
          f"inverted at budget {args.budgets[0]:g}; median over edits: change inside the part / outside, ROIR)")
    with torch.no_grad():
        ratio, roir = locality(model, generator, latents, generator.activations(latents), args.alpha)
    print(f"{'generated images':28} inside/outside {ratio:6.2f}  ROIR {roir:5.3f}")
    for loss in args.losses:
        if ("photo", loss) not in inverted:
            continue
        (result,) = inverted[("photo", loss)]
        with torch.no_grad():
            ratio, roir = locality(model, generator, result.latents, result.activations.to(generator.device), args.alpha)
        print(f"{'photo, ' + loss:28} inside/outside {ratio:6.2f}  ROIR {roir:5.3f}")

    if not Path(args.eval_python).exists():
        print(f"\n(no MediaPipe environment at {args.eval_python}: the ROIR at the face's regions is skipped; make eval-env)")
        return
    print(f"\nROIR at MediaPipe's face regions, of edits at each region's mask (appearances 1-3, alpha {args.alpha}; median; "
          "regions found on the generator's images)")
    with torch.no_grad():
        activations = generator.activations(latents)
        masks, found, _ = find_face_regions(to_unit_range(generator.images_at(latents, activations).float()).cpu(), args.eval_python)
        rows = {f"generated images ({int(found.sum())} of {len(found)} faces found)":
                region_roir(model, generator, latents[found], activations[found], masks[found], args.alpha)}
        for loss in args.losses:
            if ("photo", loss) in inverted:
                (result,) = inverted[("photo", loss)]
                photo_latents, photo_activations = result.latents.to(generator.device), result.activations.to(generator.device)
                image = to_unit_range(generator.images_at(photo_latents, photo_activations).float()).cpu()
                masks, found, _ = find_face_regions(image, args.eval_python)
                rows[f"photo, {loss}" + ("" if found.all() else " (no face found)")] = (
                    region_roir(model, generator, photo_latents, photo_activations, masks, args.alpha) if found.all() else {})
    for name, medians in rows.items():
        print(f"{name:44} " + "  ".join(f"{region} {medians[region]:5.3f}" if region in medians else f"{region}   n/a" for region in REGIONS[:3]))


if __name__ == "__main__":
    main()
