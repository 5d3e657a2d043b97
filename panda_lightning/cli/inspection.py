"""``panda saliency | rank | refine | layers``: what a fitted checkpoint (or a generator) holds."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import NamedTuple

import torch
from lightning.pytorch.utilities import rank_zero_info
from torch import nn

from panda_lightning import PandA
from panda_lightning.callbacks.refined_parts import RefinedParts
from panda_lightning.cli.shared import documents_shared_options, load_fitted, write
from panda_lightning.datamodules import GeneratorActivations
from panda_lightning.functional.editing import appearance_scores, localise, mean_saliency, saliency_maps
from panda_lightning.functional.refinement import NUM_NEIGHBOURS
from panda_lightning.functional.validation import check_index, check_int
from panda_lightning.generators.latents import LatentSampler
from panda_lightning.generators.layers import LayerOutput, layer_outputs
from panda_lightning.files import write_atomically
from panda_lightning.images import mask_png, saliency_grid, tile, to_unit_range


class InspectionCommands:
    """The Trainer's subcommands that show parts, appearances and layers."""

    @documents_shared_options
    def saliency(
        self,
        model: PandA,
        datamodule: GeneratorActivations,
        ckpt_path: str,
        appearances: list[int],
        num_samples: int = 6,
        threshold_samples: int = 512,
        seed: int = 0,
        output: str = "saliency.png",
        masks: str | None = None,
        weights_only: bool | None = None,
    ) -> Path:
        """Where each appearance is: saliency maps and their localisation (Sec. 5.1.2).

        Args:
            appearances: the appearances to show, two columns each: the map (grey 0, white
                most, black least), and the sample where the map is at least its mean.
            num_samples: generated samples, one row each.
            threshold_samples: samples over which each appearance's mean saliency is taken.
            masks: a folder to write each localisation to as well, at the image's size (white
                where the map is at least its mean), ``sample{i}_appearance{j}.png``: a mask
                ``panda edit --edits`` takes.
        """
        generator = datamodule.generator
        fitted = load_fitted(model, generator, ckpt_path, weights_only)
        count_appearances = fitted.appearances.shape[1]
        indices = [check_index("appearances", j, count_appearances, "appearances") for j in appearances]
        shown = fitted.appearances.detach()[:, indices]
        thresholds = mean_saliency(datamodule.held_out_batches(threshold_samples), shown)

        latents = generator.preview_latents(num_samples, seed)
        maps = saliency_maps(generator.activations(latents), shown).float().cpu()
        images = to_unit_range(generator.generate(latents).float().cpu())
        rank_zero_info(f"mean saliency (localisation thresholds) of appearances {appearances}: {thresholds.tolist()}")
        located = localise(maps, thresholds.cpu())
        if masks is not None:
            enlarged = torch.nn.functional.interpolate(located.float(), size=images.shape[-2:], mode="nearest")
            for i, sample_masks in enumerate(enlarged):
                for j, mask in zip(indices, sample_masks):
                    write_atomically(Path(masks) / f"sample{i}_appearance{j}.png", lambda file, m=mask: file.write(mask_png(m)))
            rank_zero_info(f"wrote {enlarged.shape[0] * enlarged.shape[1]} localisation masks to {masks}")
        return write(saliency_grid(images, maps, located, appearances=indices), output)

    @documents_shared_options
    def refine(
        self,
        model: PandA,
        datamodule: GeneratorActivations,
        ckpt_path: str,
        num_neighbours: int = NUM_NEIGHBOURS,
        steps: int = 10,
        num_samples: int = 6,
        seed: int = 0,
        output: str = "refine.png",
        weights_only: bool | None = None,
    ) -> Path:
        """Each sample's own parts, refined from the global parts (Sec. 4.2-4.3, Alg. 2, Fig. 8).

        Args:
            num_neighbours: ``k`` of the mutual kNN graph, from 1 to ``H * W - 1``.
            steps: projected gradient steps of the refinement.
            num_samples: generated samples, one column each; rows: the samples, the global
                parts, parts refined with the full affinity, and with the mutual-kNN affinity.
        """
        generator = datamodule.generator
        fitted = load_fitted(model, generator, ckpt_path, weights_only)
        renderer = RefinedParts(num_neighbours=num_neighbours, steps=steps)  # the callback's picture
        return write(renderer.picture(generator, fitted, generator.preview_latents(num_samples, seed)), output)

    @documents_shared_options
    def rank(
        self,
        model: PandA,
        datamodule: GeneratorActivations,
        ckpt_path: str,
        appearance: int,
        part: int | None = None,
        num_samples: int = 256,
        show: int = 8,
        output: str = "rank.png",
        weights_only: bool | None = None,
    ) -> Path:
        """Rank samples by how much of an appearance they hold, overall (Eq. 17) or at one part
        (Eq. 18); writes the ``show`` highest (top row) and lowest (bottom row).

        Args:
            appearance: the appearance to rank by.
            part: rank by the appearance at this part only; ``None`` ranks over the whole image.
            num_samples: held-out samples to rank.
            show: samples shown in each row.
        """
        generator = datamodule.generator
        fitted = load_fitted(model, generator, ckpt_path, weights_only)
        appearances, parts = fitted.appearances.detach(), fitted.parts.detach()
        if part is not None:
            check_index("part", part, parts.shape[1], "parts")
        check_int("show", show, low=1, high=num_samples, why=f"at most num_samples={num_samples}")
        scores = torch.cat([
            appearance_scores(Z, appearances, appearance, None if part is None else parts[:, part : part + 1]).flatten()
            for Z in datamodule.held_out_batches(num_samples)
        ]).cpu()
        order = scores.argsort(descending=True)
        chosen = torch.cat([order[:show], order[-show:]])
        images = to_unit_range(generator.generate(generator.held_out_latents(chosen.tolist())).float().cpu())
        rank_zero_info(f"highest scores {scores[order[:show]].tolist()}, lowest {scores[order[-show:]].tolist()}")
        return write(tile(images.view(2, show, *images.shape[1:]), rows=["highest", "lowest"]), output)

    def layers(
        self,
        model: PandA | None,
        datamodule: ConfiguredGenerator,
        ckpt_path: str | None = None,
        weights_only: bool | None = None,
    ) -> list[LayerOutput]:
        """List the generator's layers with their output shapes, to choose data.layer.

        Runs one sample through the configured generator and prints each layer in the order the
        forward pass computes it, with the elements of tuple and dict outputs apart
        (``synthesis.b16[0]``); ``*`` marks the feature maps ``(N, C, H, W)`` PandA can factorise.
        The configured ``data.layer`` need not be valid: it is checked last.

        Args:
            ckpt_path: not used; accepted, as ``weights_only`` is, so that the ``config.yaml``
                a fit writes can be given as it is.
            weights_only: not used.
        """
        network = datamodule.network
        latents = datamodule.sampler(1, torch.Generator().manual_seed(0))
        rows = layer_outputs(network, lambda: network(latents))
        print(_layer_table(rows, type(network).__name__, datamodule.layer))
        return rows


class ConfiguredGenerator(NamedTuple):
    """What ``panda layers`` builds from a config in place of the DataModule, which needs a valid layer."""

    network: nn.Module
    sampler: LatentSampler
    layer: str


def _layer_table(rows: list[LayerOutput], generator: str, configured: str) -> str:
    width = max(len(row.layer) for row in rows)
    lines = [
        f"Layers of {generator} on one sample, in the order the forward pass computes them; "
        "* marks a feature map (N, C, H, W) that data.layer can name:"
    ]
    for row in rows:
        notes = {0: ["not run by forward(): a container, or unused"], 1: []}.get(
            row.calls, [f"runs {row.calls} times: its first output counts"]
        )
        notes += [f"also {row.alias}"] if row.alias else []
        notes += ["<- data.layer"] if configured in (row.layer, row.alias) else []
        lines.append(f"{'*' if row.usable else ' '} {row.layer:<{width}}  {row.output:<18}  {'; '.join(notes)}".rstrip())
    usable = [name for row in rows if row.usable for name in (row.layer, row.alias) if name]
    chosen = next((row for row in rows if configured in (row.layer, row.alias)), None)
    elements = [name for name in usable if name.startswith(configured + "[")]
    if chosen is not None and chosen.usable:
        verdict = f"data.layer={configured!r} outputs {chosen.output}: PandA can factorise it."
    elif chosen is not None:
        verdict = f"data.layer={configured!r} outputs {chosen.output}, not a feature map (N, C, H, W): choose a layer marked *."
    elif elements:
        verdict = f"data.layer={configured!r} outputs several tensors: name one, such as {elements[0]!r}."
    else:
        close = difflib.get_close_matches(configured, usable, n=3)
        hint = f" (did you mean {', '.join(map(repr, close))}?)" if close else ""
        verdict = f"data.layer={configured!r} is none of these layers{hint}: choose a layer marked *."
    return "\n".join(lines + [verdict])
