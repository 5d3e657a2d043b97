"""Render the learnt parts over a few fixed generated images."""

from __future__ import annotations

import lightning as L
from torch import Tensor

from panda_lightning.callbacks.rendering import FixedSamplePicture, generated_cells
from panda_lightning.generators.frozen import FrozenGenerator
from panda_lightning.images import parts_grid


class PartsOverlay(FixedSamplePicture):
    """Each part over fixed generated images: one row per image; the image, all parts, then each
    part painted over the image (TensorBoard image ``parts``, ``parts.png``).

    Args: as :class:`callbacks.rendering.FixedSamplePicture`.
    """

    tag = "parts"

    def picture(self, generator: FrozenGenerator, pl_module: L.LightningModule, latents: Tensor) -> Tensor:
        _, height, width = pl_module.hparams.feature_shape
        images = generated_cells(generator, latents)
        return parts_grid(images, pl_module.parts.detach(), height, width)
