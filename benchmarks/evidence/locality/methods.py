"""The methods of the locality table, each trained on the frozen generator, timed, and turned
into candidate edits: SeFa from the first layer's weight, GANSpace from PCA at ``main.2``,
spherical k-means of the channel fibres at ``main.8`` (Collins et al.), LowRankGAN and ReSeFa
from the generator's Jacobians at each region, and PandA fits (Algorithm 1, to convergence), at
their global parts, refined parts or the regions' own masks.

Each lists a region's candidates in its own order of priority, which the protocol's budget cuts:

- a latent method: its directions in their order (variance, singular value, or for LowRankGAN
  and ReSeFa the region's directions by their eigenvalue), each way;
- a layer method: the ``PARTS_PER_REGION`` parts (or clusters) with the largest share of their
  mass inside the region over the selection samples, and at each its appearances by how much
  the samples differ along them there (:func:`panda_lightning.functional.editing.appearance_spread`,
  the editor's ranking), each way; at the region's own mask, the appearances alone.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import lightning as L
import torch
import torch.nn.functional as F
from einops import einsum
from torch import Tensor

from benchmarks.evidence.face_regions import REGIONS
from benchmarks.evidence.locality.baselines import (
    channel_fibres,
    cluster_masks,
    edit_latents,
    ganspace_directions,
    kmeans,
    latent_weight,
    sefa_directions,
)
from benchmarks.evidence.locality.protocol import SEED, TRAINING_STREAM, Candidate, Method, Samples, grown
from benchmarks.evidence.locality.region_directions import jacobian_grams, lowrankgan_directions, resefa_directions
from panda_lightning import PandA
from panda_lightning.cli.trainer import PandATrainer
from panda_lightning.datamodules import GeneratorActivations
from panda_lightning.generators.latents import latents_for
from panda_lightning.functional.editing import appearance_spread, local_edit, mask_at_layer, part_mask, saliency_maps
from panda_lightning.generators import FaceDCGAN
from panda_lightning.generators.layers import activations_at
from panda_lightning.images import to_unit_range

FIT_SEED = 0  # of every PandA fit
PARTS_PER_REGION = 2  # a layer method's parts (or clusters) tried at a region


def at_layer(generator: FaceDCGAN, layer: str, latents: Tensor) -> Tensor:
    """``Z: (N, C, H, W)`` at ``layer``; the layers after it do not run."""
    return activations_at(generator, layer, lambda: generator(latents))


def layer_activations(generator: FaceDCGAN, layer: str, samples: Samples) -> Tensor:
    """The samples' ``Z`` at ``layer``, computed once per set of samples."""
    return samples.cached(("activations", layer), lambda: at_layer(generator, layer, samples.latents))


def signed(label: str, sign: int) -> str:
    return f"{label} {'+' if sign > 0 else '-'}"


# -- edits in latent space and at a layer ----------------------------------------------------


def latent_candidates(generator: FaceDCGAN, directions: Tensor, label: str = "direction") -> list[Candidate]:
    """Edits ``G(z + alpha n)`` along each direction in order, both ways."""

    def edit(direction: Tensor) -> Callable[[Samples, float], Tensor]:
        return lambda samples, alpha: to_unit_range(generator(edit_latents(samples.latents, direction, alpha)))

    return [
        Candidate(signed(f"{label} {i}", sign), edit(sign * direction.float()))
        for i, direction in enumerate(directions)
        for sign in (1, -1)
    ]


def latent_method(name: str, generator: FaceDCGAN, directions: Tensor, seconds: float) -> Method:
    """The same directions, in their order, for every region."""
    candidates = latent_candidates(generator, directions)
    return Method(name, seconds, lambda region, selection: candidates)


def part_shares(masks: Tensor, regions: Tensor) -> Tensor:
    """Each part's share of its mass inside the region, over the samples: ``(K,)`` from the
    parts' ``masks`` at the layer, ``(K, h, w)`` or per sample ``(N, K, h, w)``, and the region
    ``(N, H, W)`` at the images' size, to which the masks are enlarged (bilinear)."""
    per_sample = masks if masks.ndim == 4 else masks.expand(len(regions), *masks.shape)
    enlarged = F.interpolate(per_sample.float(), size=regions.shape[-2:], mode="bilinear", align_corners=False)
    inside = einsum(enlarged, regions, "n k h w, n h w -> k")
    return inside / enlarged.sum(dim=(0, 2, 3)).clamp_min(torch.finfo(inside.dtype).tiny)


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
    varied: bool = True,
) -> Method:
    """Edits ``Z + alpha s a_j m^T`` at a layer (Sec. 3.3.1), for masks ``m`` and appearances
    ``a_j``, both ways; ``s`` is a typical position's activation norm, so strengths compare
    across layers. ``masks(samples)`` gives ``(num_masks, H, W)`` or per sample
    ``(N, num_masks, H, W)``; with ``region_masks``, mask ``r`` is region ``r``'s own.

    A region's candidates: the ``PARTS_PER_REGION`` masks with the largest share inside it (the
    region's own mask with ``region_masks``), and at each the appearances by
    :func:`appearance_spread` over the selection samples, taken in turn: each mask's first
    appearance both ways, then each one's second, and so on."""
    unit_appearances = appearances / appearances.norm(dim=0)

    def sample_masks(samples: Samples) -> Tensor:
        return samples.cached((name, "masks"), lambda: masks(samples))

    def edit(mask_index: int, appearance: int, sign: int) -> Callable[[Samples, float], Tensor]:
        def edited(samples: Samples, alpha: float) -> Tensor:
            Z = layer_activations(generator, layer, samples)
            changed = local_edit(Z, appearances, [(sample_masks(samples)[..., mask_index, :, :], appearance, sign * alpha * scale)])
            return to_unit_range(generator.forward_from(layer, changed))

        return edited

    every = {
        (k, j, sign): Candidate(
            signed(f"{mask_label} {REGIONS[k] if region_masks else k}, appearance {j}", sign), edit(k, j, sign)
        )
        for k in range(num_masks)
        for j in range(appearances.shape[1])
        for sign in (1, -1)
    }

    def candidates(region: str, selection: Samples) -> list[Candidate]:
        found = sample_masks(selection)
        r = REGIONS.index(region)
        if region_masks:
            chosen = [r]
        else:
            shares = part_shares(found, selection.regions[:, r])
            chosen = shares.argsort(descending=True)[:PARTS_PER_REGION].tolist()
        saliency = selection.cached(
            (name, "saliency"), lambda: saliency_maps(layer_activations(generator, layer, selection), unit_appearances)
        )
        orders = [appearance_spread(saliency, found[..., k, :, :]).argsort(descending=True).tolist() for k in chosen]
        return [
            every[(k, order[rank], sign)]
            for rank in range(appearances.shape[1])
            for k, order in zip(chosen, orders)
            for sign in (1, -1)
        ]

    return Method(name, seconds, candidates, varied)


# -- the methods, trained and timed ----------------------------------------------------------


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


def train_region_directions(
    generator: FaceDCGAN, training: Samples, num_directions: int, grows: tuple[int, ...] = (0,)
) -> list[Method]:
    """LowRankGAN and ReSeFa: for each region, directions from the Jacobians of the images at
    ``training``'s samples, weighted by each sample's own mask of the region, for each region
    definition (the regions grown by each of ``grows`` pixels). The Jacobians are computed once
    for all; each method's time is theirs plus its own solve of the regions as MediaPipe finds them."""
    start = time.perf_counter()
    masks = torch.cat([grown(training.regions, pixels) for pixels in grows], dim=1)
    with torch.enable_grad():  # forward-mode derivatives
        inside, outside = jacobian_grams(lambda z: to_unit_range(generator(z)), training.latents, masks)
    jacobian_seconds = time.perf_counter() - start
    methods = []
    for name, solve in (("LowRankGAN", lowrankgan_directions), ("ReSeFa", resefa_directions)):
        start = time.perf_counter()
        directions = [solve(inside[r], outside[r], num_directions) for r in range(len(REGIONS))]
        seconds = jacobian_seconds + time.perf_counter() - start
        directions += [solve(inside[r], outside[r], num_directions) for r in range(len(REGIONS), len(inside))]
        candidates = {
            (pixels, region): latent_candidates(generator, directions[g * len(REGIONS) + r], f"{region} direction")
            for g, pixels in enumerate(grows)
            for r, region in enumerate(REGIONS)
        }
        methods.append(region_method(f"{name} ({len(training)} samples, {num_directions} per region)", seconds, candidates))
    return methods


def region_method(name: str, seconds: float, candidates: dict[tuple[int, str], list[Candidate]]) -> Method:
    """A method whose candidates were found for each region definition ``(grow, region)``."""

    def for_region(region: str, selection: Samples) -> list[Candidate]:
        if (selection.grow, region) not in candidates:
            grows = sorted({grow for grow, _ in candidates})
            raise ValueError(f"{name} was trained for regions grown by {grows} pixels, not {selection.grow}.")
        return candidates[(selection.grow, region)]

    return Method(name, seconds, for_region)


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
    L.seed_everything(FIT_SEED, verbose=False)
    data = GeneratorActivations(generator, layer=layer, batch_size=64)
    model = PandA(data.feature_shape, layer=layer, parts_rank=parts_rank)
    trainer = PandATrainer(  # validates every 50 steps and stops on the held-out error, as `panda fit`
        accelerator="cpu", devices=1, max_steps=max_steps, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False,
    )
    start = time.perf_counter()
    with torch.enable_grad():  # restores the caller's mode after the fit, which Lightning leaves on
        trainer.fit(model, data)
    return model.eval(), time.perf_counter() - start


def panda_method(
    generator: FaceDCGAN, model: PandA, seconds: float, num_appearances: int, refine: str | None = None,
    at_regions: bool = False, varied: bool = True,
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
            model.activation_scale.item(), seconds, mask_label="mask", region_masks=True, varied=varied,
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

    return layer_method(
        name, generator, layer, appearances, masks, parts_rank, model.activation_scale.item(), seconds, varied=varied
    )
