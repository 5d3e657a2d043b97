"""What the picture subcommands share: their common options, declared once, a fitted checkpoint
with the configured generator (a :class:`~panda_lightning.run.Run`), and writing its pictures."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor

from panda_lightning.datamodules import GeneratorActivations
from panda_lightning.fitting.module import PandA
from panda_lightning.images import save_png
from panda_lightning.generators.frozen import Edit
from panda_lightning.pictures import check_layout
from panda_lightning.run import Run, load_fitted

# The options every subcommand on a checkpoint takes, with their help (jsonargparse reads a
# method's docstring for --help).
SHARED_OPTIONS = {
    "ckpt_path": "the fitted checkpoint (``panda fit`` writes it, as ``last.ckpt``).",
    "image": "a photo (PNG or JPEG) that ``panda invert`` inverted, to edit in place of generated samples; "
    "the picture is then the photo at its own size, the edit carried back into its box.",
    "inversion": "the photo's inversion file; ``None``: ``<photo's name>.inversion.pt`` (what ``panda invert`` writes).",
    "seed": "seed of the samples' latents.",
    "output": "the PNG to write.",
    "layout": "``rows``: one row per sample, original | edited | difference; ``edited``: the edited "
    "image alone at the generator's size (with several samples, ``output``'s name numbered: ``edit_0.png``, ...).",
    "weights_only": "as in ``fit``: how to load the checkpoint.",
}

Command = TypeVar("Command", bound=Callable)


def documents_shared_options(command: Command) -> Command:
    """Add the help of the shared options ``command`` takes to the end of its docstring's Args."""
    documented = command.__doc__ or ""
    taken = [name for name in inspect.signature(command).parameters if name in SHARED_OPTIONS and f"    {name}: " not in documented]
    lines = "".join(f"\n            {name}: {SHARED_OPTIONS[name]}" for name in taken)
    command.__doc__ = (command.__doc__ or "").rstrip() + lines + "\n        "
    return command


def fitted_run(model: PandA, datamodule: GeneratorActivations, ckpt_path: str, weights_only: bool | None) -> Run:
    """The checkpoint's model with the configured generator, after checking it fits the generator's layer."""
    # (PandACLI has checked that ckpt_path is a readable checkpoint of ours.)
    return Run(load_fitted(ckpt_path, datamodule.generator, weights_only, type(model)), datamodule)


def write_edited(
    run: Run, edit: Edit, num_samples: int, seed: int, image: str | None, inversion: str | None, output: str, what: str,
    layout: str,
) -> Path:
    """An edit command's picture (:meth:`Run.edited`) in ``layout``, written to ``output``: each
    edited image alone (numbered when several) or original | edited | difference rows; for a photo,
    the generator's edited image of its box beside it (``<output>.generator.png``)."""
    check_layout(layout)  # (before the generator runs)
    shown = run.edited(edit, num_samples, seed, image, inversion)
    picture = shown.picture(layout)
    rank_zero_info(f"{what}: mean absolute change per pixel {shown.change:.4f}")
    if shown.generated is not None:
        write(shown.generated[0], str(Path(output).with_suffix(".generator.png")))
    if layout == "rows":
        return write(picture, output)
    path = Path(output)
    paths = [path] if len(picture) == 1 else [path.with_name(f"{path.stem}_{i}{path.suffix}") for i in range(len(picture))]
    return [write(image, str(each)) for image, each in zip(picture, paths)][0]


def write(picture: Tensor, output: str) -> Path:
    path = save_png(picture, output)
    rank_zero_info(f"wrote {path}")
    return path
