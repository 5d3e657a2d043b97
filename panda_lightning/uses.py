"""What a user asks of a fitted model, as a function of the layer's activations ``Z: (N, C, H, W)``.

``panda edit | remove | rewrite`` and ``panda app`` build their edits here from the same
options, so that an edit made in the app and its exported command give the same image.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torch import Tensor

from panda_lightning.fitting.module import PandA
from panda_lightning.functional.editing import border_mask, remove_object, rewrite_concept
from panda_lightning.functional.refinement import NUM_NEIGHBOURS
from panda_lightning.images import load_mask

Edit = Callable[[Tensor], Tensor]
Where = int | str | Tensor  # a part index, a mask file, or a mask


def mask_or_part(where: Where) -> int | Tensor:
    """A part index or a mask as it is; a mask file read (white = 1)."""
    return load_mask(where) if isinstance(where, str) else where


def local_edits(
    fitted: PandA, edits: Sequence[tuple[Where, int, float]], refine: str | None = None, num_neighbours: int = NUM_NEIGHBOURS
) -> Edit:
    """Appearances added at parts or masks (Sec. 3.3.1): ``edits`` are ``(where, appearance, alpha)``;
    with ``refine`` (``"full"`` or ``"mutual_knn"``) part indices are each sample's refined parts."""
    resolved = [(mask_or_part(where), appearance, alpha) for where, appearance, alpha in edits]

    def edit(Z: Tensor) -> Tensor:
        parts = None if refine is None else fitted.refine(Z, refine, num_neighbours=num_neighbours)
        return fitted.local_edit(Z, resolved, parts)

    return edit


def object_removal(
    fitted: PandA,
    where: Where,
    appearance: int | None = None,
    alpha: float = 3.0,
    border: int | None = None,
    refine: str | None = None,
    num_neighbours: int = NUM_NEIGHBOURS,
) -> Edit:
    """What is at a part or mask filled with each sample's background (Sec. 5.2), or, given
    ``appearance``, that appearance added there at ``alpha``."""
    if appearance is not None:
        return local_edits(fitted, [(where, appearance, alpha)], refine, num_neighbours)
    _, height, width = fitted.hparams.feature_shape
    resolved, ring = mask_or_part(where), border_mask(height, width, border)

    def remove(Z: Tensor) -> Tensor:
        parts = None if refine is None else fitted.refine(Z, refine, num_neighbours=num_neighbours)
        return remove_object(Z, fitted.mask(resolved, parts), ring)

    return remove


def concept_rewrite(fitted: PandA, source: int, target: int, alpha: float = 1.0) -> Edit:
    """Appearance ``source`` replaced by ``target`` wherever it is present (Eq. 14-16)."""
    appearances = fitted.appearances.detach()
    return lambda Z: rewrite_concept(Z, appearances, source, target, alpha)
