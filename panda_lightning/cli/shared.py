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
from panda_lightning.functional.validation import check_choice
from panda_lightning.generators.frozen import FrozenGenerator
from panda_lightning.images import difference_image, save_png, tile, to_unit_range
from panda_lightning.inversion import Inversion
from panda_lightning.photos import carry_back, load_photo

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
    """The samples of ``latents`` edited, written to ``output`` in ``layout``."""
    check_choice("layout", layout, LAYOUTS)
    original, (edited,) = generator.generate_with_edits(latents, [edit])
    return write_before_after(to_unit_range(original.float().cpu()), to_unit_range(edited.float().cpu()), output, what, layout)


def photo_before_after(
    generator: FrozenGenerator, image: str, inversion: str | None, edit: Callable[[Tensor], Tensor], output: str, what: str,
    layout: str = "rows",
) -> Path:
    """A photo inverted by ``panda invert`` edited at its own size (the edit carried back into its
    box), written to ``output`` in ``layout``; and the edited generator image of the box, beside it
    (``<output>.generator.png``). ``inversion``: its file; ``None``: ``<photo's name>.inversion.pt``."""
    check_choice("layout", layout, LAYOUTS)
    photo = load_photo(image)
    path = inversion or f"{Path(image).stem}.inversion.pt"
    if not Path(path).is_file():
        raise FileNotFoundError(f"inversion={path!r} is not a file: run panda invert --image {image} first (it writes "
                                "<photo's name>.inversion.pt), or pass --inversion.")
    inverted = Inversion.load(path).check_for(generator, photo, f"inversion={path!r}")
    reconstructed, edited = inverted.images(generator)[0].cpu(), inverted.images(generator, edit)[0].cpu()
    write(edited, str(Path(output).with_suffix(".generator.png")))
    return write_before_after(photo[None], carry_back(photo, inverted.box, reconstructed, edited)[None], output, what, layout)


def write_before_after(original: Tensor, edited: Tensor, output: str, what: str, layout: str) -> Path:
    """``(N, 3, H, W)`` images in ``[0, 1]`` before and after an edit: each edited image alone
    (``layout="edited"``, numbered when several), or original | edited | difference rows."""
    rank_zero_info(f"{what}: mean absolute change per pixel {(edited - original).abs().mean().item():.4f}")
    if layout == "edited":
        path = Path(output)
        paths = [path] if len(edited) == 1 else [path.with_name(f"{path.stem}_{i}{path.suffix}") for i in range(len(edited))]
        return [write(image, str(each)) for image, each in zip(edited, paths)][0]
    difference = difference_image(original, edited)
    columns = ["original", "edited", "difference"]
    # At the generator's full size, however large: the pictures of a fit are the small ones.
    return write(tile(torch.stack([original, edited, difference], dim=1), columns=columns, largest=None), output)


def render(
    generator: FrozenGenerator, image: str | None, inversion: str | None, num_samples: int, seed: int,
    edit: Callable[[Tensor], Tensor], output: str, what: str, layout: str,
) -> Path:
    """An edit command's picture: of a photo given as ``image`` (inverted), or of generated samples."""
    if image is not None:
        return photo_before_after(generator, image, inversion, edit, output, what, layout)
    if inversion is not None:
        raise ValueError(f"inversion={inversion!r} is given without the photo it was made of: pass --image too.")
    return before_after(generator, generator.preview_latents(num_samples, seed), edit, output, what, layout)


def write(picture: Tensor, output: str) -> Path:
    path = save_png(picture, output)
    rank_zero_info(f"wrote {path}")
    return path
