"""How well the first appearances localise the regions of a face (Sec. 5.1.2), measured.

    python -m benchmarks.evidence.saliency_localisation [--layer main.8] [--appearances 16] [--test_samples 256] [--quick]
        [--eval_python .venv-eval/bin/python] [--picture docs/saliency_localisation.png]

On the README's face generator, at ``--layer`` (``main.8``). With ``R_C = C`` Algorithm 1 takes no A step, so
PandA's appearances are its HOSVD initialisation: computed here as ``panda fit`` computes them
(the first 256 samples of the held-out stream), no fit needed. Each of the first K appearances
localises where its saliency ``m_ik = a_k^T Z_i`` is at least its mean ``mu_k`` over 512
held-out samples and all positions (the rule of Sec. 5.1.2, as ``panda saliency`` draws it),
enlarged (nearest) from the layer to the image. An eigenvector's sign is arbitrary, so the
opposite rule, ``m_ik <= mu_k`` (the localisation of ``-a_k``), is scored too (``-`` below).

The regions are MediaPipe's (``benchmarks/evidence/face_regions.py``, in ``.venv-eval``): eyes, nose,
mouth, the face (inside its oval) and the background (outside it), a pixel in a region where
its soft mask is at least 0.5, on the test faces (another stream) that pass its landmark checks.
For each region it prints the appearance and sign whose masks have the best mean IoU over those
faces, that IoU, and the IoU of a mask that covers the whole image (what no localisation scores).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from benchmarks.evidence.locality.protocol import find_face_regions
from panda_lightning.datamodules import GeneratorActivations
from panda_lightning.functional.editing import localise, mean_saliency, saliency_maps
from panda_lightning.functional.factorization import channel_scatter, hosvd_appearances, unfold
from panda_lightning.generators import PhotoFaceDCGAN
from panda_lightning.images import saliency_grid, save_png, to_unit_range

INIT_SAMPLES, THRESHOLD_SAMPLES = 256, 512  # panda fit's model.init_samples, panda saliency's threshold_samples


def mean_iou(located: Tensor, region: Tensor) -> Tensor:
    """The mean over samples of the IoU of boolean masks ``located: (N, K, H, W)`` and
    ``region: (N, H, W)``, for each of the ``K`` masks: ``(K,)``."""
    intersection = (located & region[:, None]).sum(dim=(2, 3)).float()
    union = (located | region[:, None]).sum(dim=(2, 3)).float().clamp_min(1)
    return (intersection / union).mean(0)


def best_localisations(located: Tensor, regions: dict[str, Tensor]) -> dict[str, tuple[int, str, float]]:
    """For each region, ``(appearance, sign, IoU)`` of the best mask: ``located`` holds each
    appearance's masks ``(N, K, H, W)`` for ``m >= mu``; ``~located``, those of ``m <= mu``."""
    best = {}
    for name, region in regions.items():
        scores = torch.stack([mean_iou(located, region), mean_iou(~located, region)])  # (2, K)
        sign, appearance = divmod(scores.argmax().item(), scores.shape[1])
        best[name] = (appearance, "+-"[sign], scores[sign, appearance].item())
    return best


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.evidence.saliency_localisation", description=__doc__.splitlines()[0])
    parser.add_argument("--layer", default="main.8")
    parser.add_argument("--appearances", type=int, default=16, help="K: the first K appearances are tried")
    parser.add_argument("--test_samples", type=int, default=256)
    parser.add_argument("--eval_python", default=str(Path(".venv-eval") / "bin" / "python"))
    parser.add_argument("--quick", action="store_true", help="8 appearances, 64 test samples")
    parser.add_argument("--picture", help="write the chosen appearances' saliency and localisation (Fig. 5, rows 2-3) to this PNG")
    args = parser.parse_args(argv)
    if args.quick:
        args.appearances, args.test_samples = 8, 64

    datamodule = GeneratorActivations(PhotoFaceDCGAN(), layer=args.layer, batch_size=64)
    channels = datamodule.feature_shape[0]
    scatter = sum(channel_scatter(unfold(Z)) for Z in datamodule.held_out_batches(INIT_SAMPLES))
    appearances = hosvd_appearances(scatter, channels)[:, : args.appearances]
    thresholds = mean_saliency(datamodule.held_out_batches(THRESHOLD_SAMPLES), appearances)

    latents = datamodule.generator.preview_latents(args.test_samples, seed=1)  # apart from the held-out stream
    images = torch.cat([to_unit_range(datamodule.generator.generate(latents[i : i + 64]).float()) for i in range(0, len(latents), 64)])
    maps = torch.cat([saliency_maps(datamodule.generator.activations(latents[i : i + 64]), appearances) for i in range(0, len(latents), 64)])
    masks, found, _ = find_face_regions(images, args.eval_python)
    images, maps, masks = images[found], maps[found], masks[found] >= 0.5
    located = F.interpolate(localise(maps, thresholds).float(), size=images.shape[-2:], mode="nearest").bool()
    eyes, nose, mouth, background = masks.unbind(1)
    regions = {"face": ~background, "background": background, "eyes": eyes, "nose": nose, "mouth": mouth}

    print(f"PhotoFaceDCGAN {args.layer} {tuple(datamodule.feature_shape)}: the first {args.appearances} appearances, "
          f"thresholds over {THRESHOLD_SAMPLES} held-out samples, {int(found.sum())} of {args.test_samples} test faces kept")
    print(f"{'region':11} {'share':>6} {'appearance':>11} {'IoU':>6} {'whole image':>12}")
    best = best_localisations(located, regions)
    everything = torch.ones_like(located[:, :1])
    for name, (appearance, sign, iou) in best.items():
        share = regions[name].float().mean().item()
        print(f"{name:11} {share:6.3f} {sign + str(appearance):>11} {iou:6.3f} {mean_iou(everything, regions[name]).item():12.3f}")

    if args.picture:
        chosen = list(dict.fromkeys(appearance for appearance, _, _ in best.values()))
        shown = slice(0, 4)
        grid = saliency_grid(images[shown].cpu(), maps[shown][:, chosen].cpu(), located[shown][:, chosen].cpu(), chosen)
        print(f"wrote {save_png(grid, args.picture)}")


if __name__ == "__main__":
    main()
