"""``panda saliency | rank | refine | layers``: what a fitted checkpoint (or a generator) holds."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import torch
from lightning.pytorch.utilities import rank_zero_info
from torch import nn

from panda_lightning import PandA
from panda_lightning.cli.shared import documents_shared_options, fitted_run, write
from panda_lightning.datamodules import GeneratorActivations
from panda_lightning.files import write_atomically
from panda_lightning.functional.refinement import NUM_NEIGHBOURS
from panda_lightning.generators.latents import LatentSampler
from panda_lightning.generators.layers import LayerOutput, layer_outputs, layer_table
from panda_lightning.images import mask_png


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
        located = fitted_run(model, datamodule, ckpt_path, weights_only).localisation(appearances, num_samples, threshold_samples, seed)
        rank_zero_info(f"mean saliency (localisation thresholds) of appearances {appearances}: {located.thresholds.tolist()}")
        if masks is not None:
            enlarged = located.masks()
            for i, sample_masks in enumerate(enlarged):
                for j, mask in zip(located.appearances, sample_masks):
                    write_atomically(Path(masks) / f"sample{i}_appearance{j}.png", lambda file, m=mask: file.write(mask_png(m)))
            rank_zero_info(f"wrote {enlarged.shape[0] * enlarged.shape[1]} localisation masks to {masks}")
        return write(located.picture(), output)

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
        run = fitted_run(model, datamodule, ckpt_path, weights_only)
        return write(run.refine(num_neighbours, steps, num_samples, seed), output)

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
        ranked = fitted_run(model, datamodule, ckpt_path, weights_only).ranking(appearance, part, num_samples, show)
        rank_zero_info(f"highest scores {ranked.highest.tolist()}, lowest {ranked.lowest.tolist()}")
        return write(ranked.picture(), output)

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
        print(layer_table(rows, type(network).__name__, datamodule.layer))
        return rows


class ConfiguredGenerator(NamedTuple):
    """What ``panda layers`` builds from a config in place of the DataModule, which needs a valid layer."""

    network: nn.Module
    sampler: LatentSampler
    layer: str
