"""Render the learnt parts over a few fixed generated images."""

from __future__ import annotations

import lightning as L
from torch import Tensor

from panda_lightning.callbacks.rendering import FixedSamplePicture, generated_cells
from panda_lightning.images import parts_grid


class PartsOverlay(FixedSamplePicture):
    """Each part over fixed generated images: one row per image; the image, all parts, then each
    part painted over the image (TensorBoard image ``parts``, ``parts.png``).

    Args: as :class:`callbacks.rendering.FixedSamplePicture`.
    """

    tag = "parts"

    def picture(self, datamodule: L.LightningDataModule, pl_module: L.LightningModule, latents: Tensor) -> Tensor:
        _, height, width = pl_module.hparams.feature_shape
        images = generated_cells(datamodule, latents)
        return parts_grid(images, pl_module.parts.detach(), height, width)
