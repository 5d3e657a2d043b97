"""What the picture subcommands share: their common options, declared once, and loading a
fitted checkpoint for the configured generator."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import torch
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor

from panda_lightning import PandA
from panda_lightning.generators.frozen import FrozenGenerator
from panda_lightning.functional.validation import check_choice
from panda_lightning.images import difference_image, save_png, tile, to_unit_range

# The options every subcommand on a checkpoint takes, with their help (jsonargparse reads a
# method's docstring for --help).
SHARED_OPTIONS = {
    "ckpt_path": "the fitted checkpoint (``panda fit`` writes it, as ``last.ckpt``).",
    "seed": "seed of the samples' latents.",
    "output": "the PNG to write.",
    "layout": "``rows``: one row per sample, original | edited | difference; ``edited``: the edited "
    "image alone at the generator's size (with several samples, ``output``'s name numbered: ``edit_0.png``, ...).",
    "weights_only": "as in ``fit``: how to load the checkpoint.",
}

Command = TypeVar("Command", bound=Callable)


def documents_shared_options(command: Command) -> Command:
    """Add the help of the shared options ``command`` takes to the end of its docstring's Args."""
    taken = [name for name in inspect.signature(command).parameters if name in SHARED_OPTIONS]
    lines = "".join(f"\n            {name}: {SHARED_OPTIONS[name]}" for name in taken)
    command.__doc__ = (command.__doc__ or "").rstrip() + lines + "\n        "
    return command


def load_fitted(model: PandA, generator: FrozenGenerator, ckpt_path: str, weights_only: bool | None) -> PandA:
    """The checkpoint's model, on the generator's device, after checking it fits the generator's layer."""
    # (PandACLI has checked that ckpt_path is a readable checkpoint of ours.)
    fitted = type(model).load_from_checkpoint(ckpt_path, map_location=generator.device, weights_only=weights_only)
    shape, layer = tuple(fitted.hparams.feature_shape), fitted.hparams.get("layer")
    if shape != tuple(generator.feature_shape) or (layer is not None and layer != generator.layer):
        raise ValueError(
            f"ckpt_path={ckpt_path!r} holds factors of layer {layer!r} with activations {shape}, but the "
            f"configured generator's layer {generator.layer!r} gives {tuple(generator.feature_shape)}: "
            "use the config the checkpoint was fitted with (its config.yaml sits beside the logs)."
        )
    return fitted.eval()


LAYOUTS = ("rows", "edited")


def before_after(
    generator: FrozenGenerator, latents: Tensor, edit: Callable[[Tensor], Tensor], output: str, what: str,
    layout: str = "rows",
) -> Path:
    check_choice("layout", layout, LAYOUTS)
    original, (edited,) = generator.generate_with_edits(latents, [edit])
    original, edited = to_unit_range(original.float().cpu()), to_unit_range(edited.float().cpu())
    rank_zero_info(f"{what}: mean absolute change per pixel {(edited - original).abs().mean().item():.4f}")
    if layout == "edited":
        path = Path(output)
        paths = [path] if len(edited) == 1 else [path.with_name(f"{path.stem}_{i}{path.suffix}") for i in range(len(edited))]
        return [write(image, each) for image, each in zip(edited, paths)][0]
    difference = difference_image(original, edited)
    columns = ["original", "edited", "difference"]
    # At the generator's full size, however large: the pictures of a fit are the small ones.
    return write(tile(torch.stack([original, edited, difference], dim=1), columns=columns, largest=None), output)


def write(picture: Tensor, output: str) -> Path:
    path = save_png(picture, output)
    rank_zero_info(f"wrote {path}")
    return path
