"""``panda edit | remove | rewrite``: edits of generated samples with a fitted checkpoint."""

from __future__ import annotations

from pathlib import Path

from torch import Tensor

from panda_lightning import PandA
from panda_lightning.cli.shared import before_after, documents_shared_options, load_fitted, load_if_path
from panda_lightning.datamodules import GeneratorActivations
from panda_lightning.functional.editing import border_mask, remove_object, rewrite_concept


class EditCommands:
    """The Trainer's edit subcommands; each writes a PNG of original | edited | difference rows."""

    @documents_shared_options
    def edit(
        self,
        model: PandA,
        datamodule: GeneratorActivations,
        ckpt_path: str,
        edits: list[tuple[int | str, int, float]],
        num_samples: int = 6,
        seed: int = 0,
        output: str = "edit.png",
        refine: str | None = None,
        num_neighbours: int = 16,
        weights_only: bool | None = None,
    ) -> Path:
        """Edit generated samples at parts or hand-drawn masks with chosen appearances (Sec. 3.3.1).

        Args:
            edits: ``[where, appearance, alpha]`` triples: ``where`` a part index or the path of a
                PNG mask (white = edit; the layer's size or a whole multiple, such as the
                image's), ``alpha`` the strength relative to the layer's typical activation (1
                to 5 is a visible edit).
            num_samples: generated samples, one row each: original | edited | difference.
            refine: edit at each sample's own parts, refined from the global ones (Sec. 4.2-4.3)
                with the ``"full"`` or the ``"mutual_knn"`` affinity (Alg. 2); ``None``: the global parts.
            num_neighbours: ``k`` of the mutual kNN graph.
        """
        fitted = load_fitted(model, datamodule, ckpt_path, weights_only)
        resolved = [(load_if_path(where), j, a) for where, j, a in edits]
        latents = datamodule.preview_latents(num_samples, seed)

        def edit(Z: Tensor) -> Tensor:
            parts = None if refine is None else fitted.refine(Z, refine, num_neighbours=num_neighbours)
            return fitted.local_edit(Z, resolved, parts)

        at = "" if refine is None else f" at parts refined with the {refine} affinity"
        return before_after(datamodule, latents, edit, output, f"{len(edits)} edit(s){at}")

    @documents_shared_options
    def remove(
        self,
        model: PandA,
        datamodule: GeneratorActivations,
        ckpt_path: str,
        where: int | str,
        appearance: int | None = None,
        alpha: float = 3.0,
        border: int | None = None,
        num_samples: int = 6,
        seed: int = 0,
        output: str = "remove.png",
        weights_only: bool | None = None,
    ) -> Path:
        """Remove what is at a part or mask by filling it with background (Sec. 5.2).

        Args:
            where: a part index, or the path of a PNG mask (white = remove).
            appearance: ``None`` fills with each sample's own background, its mean activation
                on the layer's border; an index instead adds that appearance at ``alpha``, as
                the paper does with a background appearance chosen by eye.
            alpha: strength when ``appearance`` is given (see ``edit``).
            border: thickness of the border in layer positions; ``None``: an eighth of the side.
            num_samples: generated samples, one row each: original | removed | difference.
        """
        fitted = load_fitted(model, datamodule, ckpt_path, weights_only)
        _, height, width = fitted.hparams.feature_shape
        if appearance is None:
            mask, ring = fitted.mask(load_if_path(where)), border_mask(height, width, border)
            edit, what = (lambda Z: remove_object(Z, mask, ring)), f"removed {where!r}, filled with each sample's border"
        else:
            edit = lambda Z: fitted.local_edit(Z, [(load_if_path(where), appearance, alpha)])  # noqa: E731
            what = f"removed {where!r} with appearance {appearance} at alpha {alpha}"
        return before_after(datamodule, datamodule.preview_latents(num_samples, seed), edit, output, what)

    @documents_shared_options
    def rewrite(
        self,
        model: PandA,
        datamodule: GeneratorActivations,
        ckpt_path: str,
        source: int,
        target: int,
        alpha: float = 1.0,
        num_samples: int = 6,
        seed: int = 0,
        output: str = "rewrite.png",
        weights_only: bool | None = None,
    ) -> Path:
        """Replace appearance ``source`` by ``target`` wherever it is present (Eq. 14-16).

        Args:
            source: the appearance to replace.
            target: the appearance to put in its place.
            alpha: how much of ``target`` per unit of ``source``.
            num_samples: generated samples, one row each: original | rewritten | difference.
        """
        appearances = load_fitted(model, datamodule, ckpt_path, weights_only).appearances.detach()
        latents = datamodule.preview_latents(num_samples, seed)
        edit = lambda Z: rewrite_concept(Z, appearances, source, target, alpha)  # noqa: E731
        return before_after(datamodule, latents, edit, output, f"appearance {source} -> {target}")
