"""Render a grid of local edits: each part edited with each of the first appearances."""

from __future__ import annotations

import lightning as L
import torch
from torch import Tensor

from callbacks.rendering import FixedSamplePicture
from panda_lightning.images import tile, to_unit_range


class EditGrid(FixedSamplePicture):
    """The first fixed sample edited at part k (rows) with appearance j (columns) at strength
    ``alpha`` (Sec. 3.3.1); the first column is the sample unedited (TensorBoard image
    ``edits``, ``edits.png``).

    Args:
        num_appearances: appearances in the columns, the first ones.
        alpha: edit strength, relative to the layer's typical activation (see ``PandA.local_edit``).
        **kwargs: as :class:`callbacks.rendering.FixedSamplePicture`.
    """

    tag = "edits"

    def __init__(self, num_appearances: int = 6, alpha: float = 3.0, **kwargs):
        super().__init__(**kwargs)
        if num_appearances < 1:
            raise ValueError(f"num_appearances={num_appearances} must be a positive integer.")
        if not torch.isfinite(torch.tensor(alpha)):
            raise ValueError(f"alpha={alpha} must be a finite number.")
        self.num_appearances = num_appearances
        self.alpha = alpha

    def picture(self, datamodule: L.LightningDataModule, pl_module: L.LightningModule, latents: Tensor) -> Tensor:
        latent = latents[:1]
        original = datamodule.generate(latent)
        appearances = range(min(self.num_appearances, pl_module.appearances.shape[1]))
        rows = []
        for part in range(pl_module.parts.shape[1]):
            edited = [
                datamodule.generate(latent, edit=lambda z: pl_module.local_edit(z, [(part, j, self.alpha)]))
                for j in appearances
            ]
            rows.append(torch.cat([original, *edited]))
        cells = to_unit_range(torch.stack(rows).float().cpu())  # (parts, 1 + appearances, 3, H, W)
        return tile(cells)
