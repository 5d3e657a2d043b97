"""``panda edit | remove | rewrite``: edits of generated samples with a fitted checkpoint."""

from __future__ import annotations

from pathlib import Path

from panda_lightning import PandA
from panda_lightning.cli.shared import documents_shared_options, fitted_run, write_edited
from panda_lightning.datamodules import GeneratorActivations
from panda_lightning.functional.refinement import NUM_NEIGHBOURS
from panda_lightning.uses import concept_rewrite, local_edits, object_removal


class EditCommands:
    """The Trainer's edit subcommands; each writes a PNG of original | edited | difference rows, or
    with ``--layout edited`` the edited images alone, as ``panda app`` shows and exports them."""

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
        layout: str = "rows",
        refine: str | None = None,
        num_neighbours: int = NUM_NEIGHBOURS,
        image: str | None = None,
        inversion: str | None = None,
        weights_only: bool | None = None,
    ) -> Path:
        """Edit generated samples (or a photo) at parts or hand-drawn masks with chosen appearances (Sec. 3.3.1).

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
        run = fitted_run(model, datamodule, ckpt_path, weights_only)
        edit = local_edits(run.model, edits, refine, num_neighbours)
        at = "" if refine is None else f" at parts refined with the {refine} affinity"
        return write_edited(run, edit, num_samples, seed, image, inversion, output, f"{len(edits)} edit(s){at}", layout)

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
        layout: str = "rows",
        refine: str | None = None,
        num_neighbours: int = NUM_NEIGHBOURS,
        image: str | None = None,
        inversion: str | None = None,
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
            refine: remove each sample's own part, refined with this affinity (as in ``edit``).
            num_neighbours: ``k`` of the mutual kNN graph.
        """
        run = fitted_run(model, datamodule, ckpt_path, weights_only)
        edit = object_removal(run.model, where, appearance, alpha, border, refine, num_neighbours)
        filled = "each sample's border" if appearance is None else f"appearance {appearance} at alpha {alpha}"
        what = f"removed {where!r}, filled with {filled}"
        return write_edited(run, edit, num_samples, seed, image, inversion, output, what, layout)

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
        layout: str = "rows",
        image: str | None = None,
        inversion: str | None = None,
        weights_only: bool | None = None,
    ) -> Path:
        """Replace appearance ``source`` by ``target`` wherever it is present (Eq. 14-16).

        Args:
            source: the appearance to replace.
            target: the appearance to put in its place.
            alpha: how much of ``target`` per unit of ``source``.
            num_samples: generated samples, one row each: original | rewritten | difference.
        """
        run = fitted_run(model, datamodule, ckpt_path, weights_only)
        edit = concept_rewrite(run.model, source, target, alpha)
        return write_edited(run, edit, num_samples, seed, image, inversion, output, f"appearance {source} -> {target}", layout)
