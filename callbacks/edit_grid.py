"""Render a grid of local edits: each part edited with each of the first appearances."""

from __future__ import annotations

import lightning as L
import torch
from torch import Tensor

from panda_lightning.callbacks.rendering import FixedSamplePicture, picture_cells
from panda_lightning.functional.validation import check_float, check_int
from panda_lightning.generators.frozen import FrozenGenerator
from panda_lightning.images import tile


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
        self.num_appearances = check_int("num_appearances", num_appearances, low=1)
        self.alpha = check_float("alpha", alpha)

    def picture(self, generator: FrozenGenerator, pl_module: L.LightningModule, latents: Tensor) -> Tensor:
        appearances = range(min(self.num_appearances, pl_module.appearances.shape[1]))
        cells = [(part, j) for part in range(pl_module.parts.shape[1]) for j in appearances]
        edits = [lambda z, part=part, j=j: pl_module.local_edit(z, [(part, j, self.alpha)]) for part, j in cells]
        original, edited = generator.generate_with_edits(latents[:1], edits, then=picture_cells)
        rows = torch.cat(edited).view(-1, len(appearances), *original.shape[1:])  # (parts, appearances, 3, H, W)
        columns = torch.cat([original.expand(rows.shape[0], 1, *original.shape[1:]), rows], dim=1)
        return tile(
            columns,
            rows=[f"part {part}" for part in range(rows.shape[0])],
            columns=["unedited", *(f"appearance {j}, x{self.alpha:g}" for j in appearances)],
        )
