"""Render each sample's refined parts next to the global ones (the paper's Fig. 8)."""

from __future__ import annotations

import lightning as L
from torch import Tensor

from panda_lightning.callbacks.rendering import FixedSamplePicture, generated_cells
from panda_lightning.functional.refinement import AFFINITIES, NUM_NEIGHBOURS
from panda_lightning.generators.frozen import FrozenGenerator
from panda_lightning.images import refinement_grid


class RefinedParts(FixedSamplePicture):
    """Fixed generated images (first row), the global parts over them, then each sample's own
    parts refined with the full affinity and with the mutual-kNN affinity of Alg. 2 (TensorBoard
    image ``refined_parts``, ``refined_parts.png``). Each pixel takes the colour of its strongest part.

    Args:
        num_neighbours: ``k`` of the mutual kNN graph, less than the layer's ``H * W``.
        steps: projected gradient steps of the refinement.
        Others: as :class:`callbacks.rendering.FixedSamplePicture`.
    """

    tag = "refined_parts"

    def __init__(self, num_neighbours: int = NUM_NEIGHBOURS, steps: int = 10, **kwargs):
        super().__init__(**kwargs)
        self.num_neighbours = num_neighbours
        self.steps = steps

    def picture(self, generator: FrozenGenerator, pl_module: L.LightningModule, latents: Tensor) -> Tensor:
        _, height, width = pl_module.hparams.feature_shape
        activations = generator.activations(latents)
        refined = [
            pl_module.refine(activations, affinity, num_neighbours=self.num_neighbours, steps=self.steps)
            for affinity in AFFINITIES
        ]
        images = generated_cells(generator, latents)
        labels = ["global parts", *(f"refined: {affinity}" for affinity in AFFINITIES)]
        return refinement_grid(images, [pl_module.parts.detach(), *refined], height, width, labels)
