"""The paper's Table 2 on the bundled face generator: how local PandA's edits are, against
SeFa, GANSpace and k-means parts, with face regions that PandA did not produce.

    make locality-table        (sets up .venv-eval with MediaPipe, then runs this; ~20 min)
    python benchmarks/locality_table.py [--selection 256] [--test 1100] [--target 0.1]
        [--panda main.8:16 ...] [--refined main.8:16 ...] [--pictures DIR] [--quick]

Protocol, the same for every method:
1. Train each method on the frozen generator, timed (the paper's Table 1 row): SeFa from the
   first layer's weight, GANSpace from PCA at ``main.2``, spherical k-means of the channel
   fibres at ``main.8`` (Collins et al.), and PandA fits (Algorithm 1, to convergence).
2. Draw a selection set and a disjoint test set of samples from streams no method trained
   on; find their eyes, nose, mouth and background with MediaPipe's face mesh
   (``benchmarks/face_regions.py``, in ``.venv-eval``); drop the samples with no face found.
3. Candidates: a latent method's directions, each way; a layer method's (part, appearance)
   pairs, each way. ``edit(z) = G(z + alpha n)`` or ``G_after(Z + alpha m a^T)``.
4. For each method and region: rank every candidate by ROIR on the first ``--screen``
   selection samples at the method's initial strength (among those that change the region of
   half the samples at least, by a tenth of the target or more); set each of the best
   ``--finalists`` to the strength that changes the region by ``--target`` on the selection
   set (mean over samples of the root-mean-square change inside, images in ``[0, 1]``;
   :func:`benchmarks.comparison.matched_strength`, at most 10x the initial strength; one
   that cannot reach it gives way to the next, up to 4x the finalists tried); keep the one
   with the lowest ROIR there.
5. Report that edit's ROIR (Eq. 13), mean +- std, on the test set, at that strength.

ROIR here leaves out samples whose region the edit did not change (a change inside of RMS
below 1e-4: ROIR is 0/0 or infinite there); the details table counts them.
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import lightning as L
import numpy as np
import torch
from face_regions import REGIONS
from torch import Tensor

from panda_lightning.datamodules import GeneratorActivations
from panda_lightning.datamodules.latent_stream import latents_for
from panda_lightning import PandA
from benchmarks.baselines import (
    channel_fibres,
    cluster_masks,
    edit_latents,
    ganspace_directions,
    kmeans,
    latent_weight,
    sefa_directions,
)
from panda_lightning.cli.trainer import PandATrainer
from benchmarks.comparison import matched_strength
from panda_lightning.functional.editing import local_edit, mask_at_layer, part_mask
from panda_lightning.generators import FaceDCGAN
from panda_lightning.images import part_colours, save_png, tile, to_unit_range
from panda_lightning.generators.layers import activations_at
from panda_lightning.metrics import region_change, roir_ratios

SEED = 2024
SELECTION_STREAM, TEST_STREAM, TRAINING_STREAM = 21, 22, 23  # apart from the fits' own streams
UNCHANGED = 1e-4  # RMS change inside the region below which an edit left it unchanged
CHUNK = 256
# Every method's first strength: a step of 3 along a unit latent direction, or 3 typical
# activations at a layer; matched strengths stay within 10x of it.
INITIAL_STRENGTH, MAX_STRENGTH = 3.0, 30.0


# -- samples ---------------------------------------------------------------------------------


@dataclass
class Samples:
    """A set of samples with what the methods need of them, each computed once."""

    latents: Tensor
    images: Tensor  # (N, 3, H, W) in [0, 1]
    regions: Tensor  # (N, len(REGIONS), H, W) in [0, 1]
    cache: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.latents)

    def cached(self, key, compute: Callable[[], Tensor]) -> Tensor:
        if key not in self.cache:
            self.cache[key] = compute()
        return self.cache[key]

    def subset(self, start: int, stop: int) -> Samples:
        return Samples(self.latents[start:stop], self.images[start:stop], self.regions[start:stop])

    def chunks(self) -> list[Samples]:
        """The set in chunks of ``CHUNK`` samples: the same chunks each time, so that what is
        computed on a chunk (activations, masks) is computed once."""
        if len(self) <= CHUNK:
            return [self]
        return self.cached("chunks", lambda: [self.subset(i, i + CHUNK) for i in range(0, len(self), CHUNK)])


def find_face_regions(images: Tensor, eval_python: str) -> tuple[Tensor, Tensor]:
    """MediaPipe's face regions of ``images`` ``(N, 3, H, W)`` in ``[0, 1]``, run in the eval
    environment: ``masks (N, 4, H, W)``, ``found (N,)``."""
    if not Path(eval_python).exists():
        raise SystemExit(
            f"--eval_python={eval_python} does not exist. The face regions need MediaPipe in an environment "
            "of its own: run `make eval-env` (or `make locality-table`, which does it first)."
        )
    script = Path(__file__).with_name("face_regions.py")
    with tempfile.TemporaryDirectory() as directory:
        pixels = (images.permute(0, 2, 3, 1) * 255).round().to(torch.uint8).numpy()
        np.save(Path(directory) / "images.npy", pixels)
        output = Path(directory) / "regions.npz"
        run = subprocess.run(
            [eval_python, str(script), "--images", str(Path(directory) / "images.npy"), "--output", str(output)],
            capture_output=True, text=True, check=False,
        )
        if run.returncode != 0:
            raise RuntimeError(f"{script.name} failed (exit status {run.returncode}):\n{run.stderr[-3000:]}")
        found = np.load(output)
        names = tuple(str(name) for name in found["regions"])
        if names != REGIONS:
            raise RuntimeError(f"face_regions.py wrote regions {names}; this script expects {REGIONS}.")
        return torch.from_numpy(found["masks"]), torch.from_numpy(found["found"])


def draw_samples(generator: FaceDCGAN, count: int, stream: int, eval_python: str) -> Samples:
    """Those of ``count`` samples of ``stream`` in which a face was found."""
    latents = latents_for(generator.sample_latents, SEED, stream, range(count))
    with torch.no_grad():
        images = torch.cat([to_unit_range(generator(chunk)) for chunk in latents.split(CHUNK)])
    masks, found = find_face_regions(images, eval_python)
    return Samples(latents[found], images[found], masks[found])


# -- methods and their candidate edits -------------------------------------------------------


def at_layer(generator: FaceDCGAN, layer: str, latents: Tensor) -> Tensor:
    """``Z: (N, C, H, W)`` at ``layer``; the layers after it do not run."""
    return activations_at(generator, layer, lambda: generator(latents))


def layer_activations(generator: FaceDCGAN, layer: str, samples: Samples) -> Tensor:
    """The samples' ``Z`` at ``layer``, computed once per set of samples."""
    return samples.cached(("activations", layer), lambda: at_layer(generator, layer, samples.latents))


@dataclass
class Candidate:
    label: str
    edit: Callable[[Samples, float], Tensor]  # (samples, strength) -> edited images in [0, 1]
    region: str | None = None  # an edit made for one region only (at that region's mask)


@dataclass
class Method:
    name: str
    seconds: float  # training time
    candidates: list[Candidate]


def signed(label: str, sign: int) -> str:
    return f"{label} {'+' if sign > 0 else '-'}"


def latent_method(name: str, generator: FaceDCGAN, directions: Tensor, seconds: float) -> Method:
    """Edits ``G(z + alpha n)`` along each direction, both ways."""

    def edit(direction: Tensor) -> Callable[[Samples, float], Tensor]:
        return lambda samples, alpha: to_unit_range(generator(edit_latents(samples.latents, direction, alpha)))

    candidates = [
        Candidate(signed(f"direction {i}", sign), edit(sign * direction.float()))
        for i, direction in enumerate(directions)
        for sign in (1, -1)
    ]
    return Method(name, seconds, candidates)


def layer_method(
    name: str,
    generator: FaceDCGAN,
    layer: str,
    appearances: Tensor,
    masks: Callable[[Samples], Tensor],
    num_masks: int,
    scale: float,
    seconds: float,
    mask_label: str = "part",
    region_masks: bool = False,
) -> Method:
    """Edits ``Z + alpha s a_j m^T`` at a layer (Sec. 3.3.1), for every mask ``m`` and appearance
    ``a_j``, both ways; ``s`` is a typical position's activation norm, so strengths compare
    across layers. ``masks(samples)`` gives ``(num_masks, H, W)`` or per sample
    ``(N, num_masks, H, W)``; with ``region_masks``, mask ``r`` is region ``r``'s own."""

    def edit(mask_index: int, appearance: int, sign: int) -> Callable[[Samples, float], Tensor]:
        def edited(samples: Samples, alpha: float) -> Tensor:
            Z = layer_activations(generator, layer, samples)
            mask = samples.cached((name, "masks"), lambda: masks(samples))[..., mask_index, :, :]
            changed = local_edit(Z, appearances, [(mask, appearance, sign * alpha * scale)])
            return to_unit_range(generator.forward_from(layer, changed))

        return edited

    candidates = [
        Candidate(
            signed(f"{mask_label} {REGIONS[k] if region_masks else k}, appearance {j}", sign),
            edit(k, j, sign),
            region=REGIONS[k] if region_masks else None,
        )
        for k in range(num_masks)
        for j in range(appearances.shape[1])
        for sign in (1, -1)
    ]
    return Method(name, seconds, candidates)


def train_sefa(generator: FaceDCGAN, num_directions: int) -> Method:
    start = time.perf_counter()
    directions = sefa_directions(latent_weight(generator.main[0]), num_directions)
    return latent_method(f"SeFa ({num_directions} directions)", generator, directions, time.perf_counter() - start)


def train_ganspace(generator: FaceDCGAN, num_directions: int, num_samples: int, layer: str = "main.2") -> Method:
    start = time.perf_counter()
    latents = latents_for(generator.sample_latents, SEED, TRAINING_STREAM, range(num_samples))
    activations = torch.cat([at_layer(generator, layer, chunk).flatten(1) for chunk in latents.split(1024)])
    directions = ganspace_directions(latents, activations, num_directions)
    seconds = time.perf_counter() - start
    return latent_method(f"GANSpace ({layer}, {num_directions} directions)", generator, directions, seconds)


def train_kmeans(generator: FaceDCGAN, layer: str, num_clusters: int, num_samples: int, num_appearances: int) -> Method:
    """Spherical k-means of the fibres (Collins et al.); a sample's mask ``k`` is where its
    fibres fall in cluster ``k``, and the appearances are the unit centroids of the
    ``num_appearances`` largest clusters."""
    start = time.perf_counter()
    latents = latents_for(generator.sample_latents, SEED, TRAINING_STREAM, range(num_samples))
    Z = at_layer(generator, layer, latents)
    centroids = kmeans(channel_fibres(Z), num_clusters, generator=torch.Generator().manual_seed(SEED), spherical=True)
    sizes = cluster_masks(Z, centroids, spherical=True).sum(dim=(0, 2, 3))
    appearances = centroids[sizes.argsort(descending=True)[:num_appearances]].T
    scale = channel_fibres(Z).norm(dim=1).square().mean().sqrt().item()
    seconds = time.perf_counter() - start

    def masks(samples: Samples) -> Tensor:
        return cluster_masks(layer_activations(generator, layer, samples), centroids, spherical=True)

    return layer_method(
        f"k-means parts ({layer}, {num_clusters} clusters)", generator, layer, appearances, masks, num_clusters,
        scale, seconds, mask_label="cluster",
    )


def fit_panda(generator: FaceDCGAN, layer: str, parts_rank: int, max_steps: int) -> tuple[PandA, float]:
    """Algorithm 1 to convergence (at most ``max_steps``), as ``make fit`` runs it, timed."""
    L.seed_everything(0, verbose=False)
    data = GeneratorActivations(generator, layer=layer, batch_size=64)
    model = PandA(data.feature_shape, layer=layer, parts_rank=parts_rank)
    trainer = PandATrainer(  # validates every 100 steps and stops on the held-out error, as `panda fit`
        accelerator="cpu", devices=1, max_steps=max_steps, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False,
    )
    start = time.perf_counter()
    trainer.fit(model, data)
    return model.eval(), time.perf_counter() - start


def panda_method(
    generator: FaceDCGAN, model: PandA, seconds: float, num_appearances: int, refine: str | None = None,
    at_regions: bool = False,
) -> Method:
    """PandA's edits with its first ``num_appearances`` appearances: at its global parts, at
    each sample's refined parts (``refine``: the affinity), or at each region's own mask
    (``at_regions``: pixel-level control, which takes the region as given, as LowRankGAN does)."""
    layer = model.hparams.layer
    _, height, width = model.hparams.feature_shape
    parts_rank = model.parts.shape[1]
    appearances = model.appearances.detach()[:, :num_appearances]

    if at_regions:
        def masks(samples: Samples) -> Tensor:
            return torch.stack([mask_at_layer(samples.regions[:, r], height, width) for r in range(len(REGIONS))], 1)

        return layer_method(
            f"PandA ({layer}, at the region's mask)", generator, layer, appearances, masks, len(REGIONS),
            model.activation_scale.item(), seconds, mask_label="mask", region_masks=True,
        )

    name = f"PandA ({layer}, {parts_rank} parts)"
    if refine is None:
        def masks(samples: Samples) -> Tensor:
            return torch.stack([part_mask(model.parts.detach(), k, height, width) for k in range(parts_rank)])
    else:
        name = f"PandA ({layer}, {parts_rank} parts, refined: {refine})"

        def masks(samples: Samples) -> Tensor:
            refined = model.refine(layer_activations(generator, layer, samples), refine)
            return torch.stack([part_mask(refined, k, height, width) for k in range(parts_rank)], 1)

    return layer_method(name, generator, layer, appearances, masks, parts_rank, model.activation_scale.item(), seconds)


# -- the protocol ----------------------------------------------------------------------------


@dataclass
class Scores:
    """An edit's ROIR terms and region changes over a set of samples, for one region."""

    ratios: Tensor  # (N,), the samples whose region changed
    changes: Tensor  # (N,) all samples' RMS change inside the region
    unchanged: int

    @property
    def roir(self) -> float:
        return self.ratios.mean().item() if len(self.ratios) else float("inf")


def evaluate(candidate: Candidate, samples: Samples, alpha: float, regions: list[str]) -> dict[str, Scores]:
    """The candidate's edit at strength ``alpha`` on every sample, scored in each region."""
    ratios = {region: [] for region in regions}
    changes = {region: [] for region in regions}
    for chunk in samples.chunks():
        edited = candidate.edit(chunk, alpha)
        for region in regions:
            mask = chunk.regions[:, REGIONS.index(region)]
            ratios[region].append(roir_ratios(chunk.images, edited, mask))
            changes[region].append(region_change(chunk.images, edited, mask))
    scores = {}
    for region in regions:
        ratio, change = torch.cat(ratios[region]), torch.cat(changes[region])
        changed = change >= UNCHANGED
        scores[region] = Scores(ratio[changed], change, int((~changed).sum()))
    return scores


@dataclass
class Choice:
    region: str
    candidate: Candidate
    alpha: float
    selection_roir: float
    screened: int


def choose(
    method: Method, screening: Samples, selection: Samples, target: float, finalists: int
) -> dict[str, Choice | None]:
    """For each region, the method's most local edit at the matched strength (step 4 of the
    protocol); ``None`` where none of its best edits changes the region by ``target``."""
    screened: dict[str, list[tuple[float, Candidate]]] = {region: [] for region in REGIONS}
    for candidate in method.candidates:
        regions = [candidate.region] if candidate.region else list(REGIONS)
        for region, scores in evaluate(candidate, screening, INITIAL_STRENGTH, regions).items():
            # An edit must change the region of half the samples at least, and could reach the target within
            # MAX_STRENGTH if its change grew linearly: a cluster found in a few faces is no edit.
            if scores.unchanged <= 0.5 * len(scores.changes) and scores.changes.mean() >= target / 10:
                screened[region].append((scores.roir, candidate))
    choices: dict[str, Choice | None] = {}
    for region in REGIONS:
        best, matched = None, 0
        # Each that cannot reach the target gives way to the next, up to 4 times the finalists.
        for _, candidate in sorted(screened[region], key=lambda pair: pair[0])[: 4 * finalists]:
            found = at_target(candidate, selection, region, target)
            if found is None:
                continue
            alpha, scores = found
            if best is None or scores.roir < best.selection_roir:
                best = Choice(region, candidate, alpha, scores.roir, len(screened[region]))
            matched += 1
            if matched == finalists:
                break
        choices[region] = best  # None: no edit changes the region by the target
    return choices


def at_target(candidate: Candidate, samples: Samples, region: str, target: float) -> tuple[float, Scores] | None:
    """The strength at which the edit changes the region by ``target`` on average over the
    samples (within 5%), and its scores there; ``None`` if no strength up to ``MAX_STRENGTH``
    does: past it, a latent far outside its prior or an appearance far past the layer's range
    would no longer be the edit meant."""
    tried: dict[float, Scores] = {}

    def change_at(alpha: float) -> float:
        tried[alpha] = evaluate(candidate, samples, alpha, [region])[region]
        return tried[alpha].changes.mean().item()

    alpha, change = matched_strength(change_at, target, INITIAL_STRENGTH, max_strength=MAX_STRENGTH)
    return (alpha, tried[alpha]) if abs(change / target - 1) <= 0.05 else None


def scores_of(choice: Choice, samples: Samples) -> Scores:
    """The chosen edit, at its strength, scored in its region on ``samples`` (the test set)."""
    return evaluate(choice.candidate, samples, choice.alpha, [choice.region])[choice.region]


# -- the run ---------------------------------------------------------------------------------


def layer_and_parts(spec: str) -> tuple[str, int]:
    layer, _, parts = spec.partition(":")
    if not layer or not parts.isdigit() or int(parts) < 1:
        raise argparse.ArgumentTypeError(f"{spec!r} is not LAYER:PARTS, such as main.8:16.")
    return layer, int(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
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
    parser.add_argument("--max_steps", type=int, default=5000, help="of each PandA fit (it stops at convergence)")
    parser.add_argument("--eval_python", default=".venv-eval/bin/python", help="Python of the environment with MediaPipe")
    parser.add_argument("--pictures", default=None, help="a folder to write regions.png and edits_<region>.png to")
    parser.add_argument("--quick", action="store_true", help="a small run to check that everything works (minutes)")
    args = parser.parse_args()
    if args.quick:
        args.selection, args.test, args.screen, args.finalists = 48, 48, 16, 2
        args.directions, args.appearances, args.ganspace_samples, args.max_steps = 4, 4, 256, 30
    torch.set_grad_enabled(False)

    generator = FaceDCGAN().eval().requires_grad_(False)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.machine()}; face DCGAN 64x64; "
        f"target RMS change in the region {args.target}", flush=True,
    )
    selection = draw_samples(generator, args.selection, SELECTION_STREAM, args.eval_python)
    testing = draw_samples(generator, args.test, TEST_STREAM, args.eval_python)
    print(
        f"samples with a face found: selection {len(selection)} of {args.selection}, test {len(testing)} of {args.test}; "
        "region shares " + ", ".join(f"{r} {testing.regions[:, i].mean():.1%}" for i, r in enumerate(REGIONS)),
        flush=True,
    )

    methods = [
        train_ganspace(generator, args.directions, args.ganspace_samples),
        train_sefa(generator, args.directions),
        *[
            train_kmeans(generator, "main.8", clusters, args.kmeans_samples, args.appearances)
            for clusters in args.kmeans_clusters
        ],
    ]
    if not set(args.refined) <= set(args.panda):
        parser.error(f"--refined {args.refined} must be among the --panda fits {args.panda}.")
    for i, (layer, parts_rank) in enumerate(args.panda):
        model, seconds = fit_panda(generator, layer, parts_rank, args.max_steps)
        methods.append(panda_method(generator, model, seconds, args.appearances))
        if (layer, parts_rank) in args.refined:
            methods.append(panda_method(generator, model, seconds, args.appearances, refine="mutual_knn"))
        if i == 0:  # a mask given by hand: how local the appearances alone are
            methods.append(panda_method(generator, model, seconds, args.appearances, at_regions=True))
    screening = selection.subset(0, args.screen)
    rows = []
    for method in methods:
        start = time.perf_counter()
        choices = choose(method, screening, selection, args.target, args.finalists)
        results = {region: choice and scores_of(choice, testing) for region, choice in choices.items()}
        rows.append((method, choices, results))
        print(f"  {method.name}: trained in {method.seconds:.2f} s, chosen and tested in {time.perf_counter() - start:.0f} s", flush=True)
    print_tables(rows, len(testing))
    if args.pictures:
        write_pictures(Path(args.pictures), rows, testing.subset(0, 4))


def print_tables(rows: list, num_test: int) -> None:
    width = max(len(method.name) for method, _, _ in rows)
    print(f"\nROIR (lower is more local), mean +- std over {num_test} test samples; training time")
    print(f"{'method':<{width}} | " + " | ".join(f"{region:^13}" for region in REGIONS) + " | training")
    for method, _, results in rows:
        cells = " | ".join(
            f"{r.ratios.mean():5.2f} +- {r.ratios.std():4.2f}" if r else f"{'n/a':^13}" for r in results.values()
        )
        print(f"{method.name:<{width}} | {cells} | {method.seconds:7.2f} s")
    print(
        "\nchosen edits: candidate (of how many), strength; on the test set: median ROIR, RMS change in the "
        "region, samples left unchanged"
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
                f"unchanged {result.unchanged}"
            )


def write_pictures(directory: Path, rows: list, samples: Samples) -> None:
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


if __name__ == "__main__":
    main()
