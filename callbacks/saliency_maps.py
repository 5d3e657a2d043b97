"""Render the saliency maps of the first appearances on a few fixed generated images."""

from __future__ import annotations

import lightning as L
from torch import Tensor

from panda_lightning.callbacks.rendering import FixedSamplePicture, generated_cells
from panda_lightning.functional.editing import saliency_maps
from panda_lightning.functional.validation import check_int
from panda_lightning.generators.frozen import FrozenGenerator
from panda_lightning.images import saliency_grid


class SaliencyMaps(FixedSamplePicture):
    """``m_ik = a_k^T Z_i`` for the first ``num_appearances`` appearances (Sec. 5.1.2): one row
    per image; grey is 0, white the most of appearance k in these images, black the least
    (TensorBoard image ``saliency``, ``saliency.png``).

    Args:
        num_appearances: appearances shown, the first ones (the HOSVD orders them by energy).
        **kwargs: as :class:`callbacks.rendering.FixedSamplePicture`.
    """

    tag = "saliency"

    def __init__(self, num_appearances: int = 6, **kwargs):
        super().__init__(**kwargs)
        self.num_appearances = check_int("num_appearances", num_appearances, low=1)

    def picture(self, generator: FrozenGenerator, pl_module: L.LightningModule, latents: Tensor) -> Tensor:
        shown = pl_module.appearances.detach()[:, : self.num_appearances]
        maps = saliency_maps(generator.activations(latents).float(), shown).cpu()
        images = generated_cells(generator, latents)
        return saliency_grid(images, maps, appearances=range(shown.shape[1]))
