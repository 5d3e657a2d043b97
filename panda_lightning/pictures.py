"""What each use of a fitted run computes, kept whole so that a notebook can look inside it, and
drawn as the picture the ``panda`` command writes (:meth:`picture`). Images are ``(N, 3, H, W)``
in ``[0, 1]`` on the CPU."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from panda_lightning.functional.editing import localise
from panda_lightning.functional.validation import check_choice
from panda_lightning.images import difference_image, saliency_grid, tile

LAYOUTS = ("rows", "edited")


def check_layout(layout: str) -> str:
    """``layout`` when :meth:`BeforeAfter.picture` takes it: checked before an edit is computed."""
    return check_choice("layout", layout, LAYOUTS)


@dataclass(frozen=True)
class BeforeAfter:
    """Images before and after an edit: generated samples, or a photo at its own size with the edit
    carried back into its box, and then ``generated``, the generator's edited image of the box."""

    original: Tensor
    edited: Tensor
    generated: Tensor | None = None

    @property
    def change(self) -> float:
        """The mean absolute change per pixel and channel."""
        return (self.edited - self.original).abs().mean().item()

    def picture(self, layout: str = "rows") -> Tensor:
        """``"rows"``: original | edited | difference, one row per image, ``(3, H', W')``, at full size;
        ``"edited"``: the edited images alone, ``(N, 3, H, W)``."""
        check_layout(layout)
        if layout == "edited":
            return self.edited
        difference = difference_image(self.original, self.edited)
        rows = torch.stack([self.original, self.edited, difference], dim=1)
        return tile(rows, columns=["original", "edited", "difference"], largest=None)


@dataclass(frozen=True)
class Localisation:
    """Saliency maps ``m_ik = a_k^T Z_i`` of some ``appearances`` on generated ``images`` (``maps:
    (N, K, H, W)`` at the layer) and their thresholds, each appearance's mean saliency over held-out
    samples (``thresholds: (K,)``), Sec. 5.1.2."""

    images: Tensor
    maps: Tensor
    thresholds: Tensor
    appearances: list[int]

    @property
    def located(self) -> Tensor:
        """Where each map is at least its mean: ``(N, K, H, W)`` booleans at the layer."""
        return localise(self.maps, self.thresholds)

    def masks(self) -> Tensor:
        """:attr:`located` at the images' size, ``(N, K, H_img, W_img)`` of 0 and 1: masks that edits take."""
        return torch.nn.functional.interpolate(self.located.float(), size=self.images.shape[-2:], mode="nearest")

    def picture(self) -> Tensor:
        """One row per image; two columns per appearance: its map (grey 0, white most, black least)
        and the image where the map is at least its mean."""
        return saliency_grid(self.images, self.maps, self.located, appearances=self.appearances)


@dataclass(frozen=True)
class Ranking:
    """Held-out samples ranked by how much of an appearance they hold (Eq. 17, or Eq. 18 at a part):
    every sample's ``scores: (num_samples,)``, and the ``images`` of the ``show`` highest then the ``show`` lowest."""

    scores: Tensor
    images: Tensor

    @property
    def show(self) -> int:
        return len(self.images) // 2

    @property
    def order(self) -> Tensor:
        """The samples' indices, highest score first."""
        return self.scores.argsort(descending=True)

    @property
    def highest(self) -> Tensor:
        return self.scores[self.order[: self.show]]

    @property
    def lowest(self) -> Tensor:
        return self.scores[self.order[-self.show :]]

    def picture(self) -> Tensor:
        """The highest (top row) and the lowest (bottom row)."""
        return tile(self.images.view(2, self.show, *self.images.shape[1:]), rows=["highest", "lowest"])
