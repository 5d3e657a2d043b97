"""A fitted run from Python: its PandA, the generator it was fitted on, frozen at its layer, and
each use as a method that returns a picture, computed by the code the ``panda`` command and the
editor run, so that the three give the same image for the same request.

    run = load_run("runs/panda/version_0")          # what `panda fit` wrote
    run.edit([[0, 5, 3.0]])                           # (3, H, W) in [0, 1], as `panda edit` writes it

Pictures are tensors in ``[0, 1]`` on the CPU; :func:`panda_lightning.images.to_pil` shows one.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import yaml
from jsonargparse import ArgumentParser
from torch import Tensor, nn

from panda_lightning.callbacks import EditGrid, PartsOverlay, RefinedParts, SaliencyMaps
from panda_lightning.callbacks.rendering import FixedSamplePicture
from panda_lightning.datamodules import GeneratorActivations
from panda_lightning.fitting.module import PandA
from panda_lightning.functional.editing import appearance_scores, mean_saliency, saliency_maps
from panda_lightning.functional.refinement import AFFINITIES, NUM_NEIGHBOURS
from panda_lightning.functional.validation import check_index, check_int
from panda_lightning.generators.frozen import Edit, FrozenGenerator
from panda_lightning.generators.latents import GaussianLatents, LatentSampler, latent_sampler
from panda_lightning.images import refinement_grid, to_unit_range
from panda_lightning.inversion import Inversion, InversionSettings, invert
from panda_lightning.loading import read_checkpoint
from panda_lightning.photos import Box, carry_back, crop, load_photo
from panda_lightning.pictures import BeforeAfter, Localisation, Ranking, check_layout
from panda_lightning.uses import Where, concept_rewrite, local_edits, object_removal

PhotoSource = str | os.PathLike | Tensor  # a photo's file, or its pixels (3, H, W) in [0, 1]


class Run:
    """A fitted ``model`` with the ``data`` it was fitted on (:class:`GeneratorActivations`, whose
    generator it edits): :func:`load_run` builds one from what ``panda fit`` wrote; a fit from
    Python builds one from its own ``Run(model, data)``.

    Each method takes the options of the ``panda`` subcommand of its name (less ``output``) and
    returns the picture that subcommand writes; ``edited``, ``localisation`` and ``ranking`` return
    what is drawn, whole (:mod:`panda_lightning.pictures`).

    Args:
        model: the fitted PandA (moved to the generator's device).
        data: the activations it was fitted on; their held-out samples set saliency thresholds and rankings.
        pictures: the callbacks whose pictures :meth:`pictures` draws; ``None``: the parts, saliency,
            edits and refined parts, each with its defaults (:func:`load_run` takes the fit's own).
    """

    def __init__(self, model: PandA, data: GeneratorActivations, pictures: Sequence[FixedSamplePicture] | None = None):
        check_same_layer(model, data.generator, "model")
        self.model = model.to(data.generator.device).eval()
        self.data = data
        self.picture_callbacks = list(pictures) if pictures is not None else [PartsOverlay(), SaliencyMaps(), EditGrid(), RefinedParts()]

    @property
    def generator(self) -> FrozenGenerator:
        return self.data.generator

    @property
    def parts(self) -> Tensor:
        """``P: (H*W, R_S)``, one part per column."""
        return self.model.parts.detach()

    @property
    def appearances(self) -> Tensor:
        """``A: (C, R_C)``, one appearance per column."""
        return self.model.appearances.detach()

    def __repr__(self) -> str:
        return f"Run({self.parts.shape[1]} parts, {self.appearances.shape[1]} appearances, {self.generator})"

    # -- edits ----------------------------------------------------------------------------------

    def edited(self, edit: Edit, num_samples: int = 6, seed: int = 0, image: PhotoSource | None = None,
               inversion: str | os.PathLike | Inversion | None = None) -> BeforeAfter:
        """Any ``edit`` of the layer's activations, ``Z: (N, C, H, W) -> Z'``, applied to the
        samples of ``seed``, or to a photo (``image``) that :meth:`invert` inverted (its
        ``inversion``, or the file of it; ``None``: ``<photo's name>.inversion.pt``)."""
        if image is not None:
            return self._photo_edited(edit, image, inversion)
        if inversion is not None:
            given = "inversion" if isinstance(inversion, Inversion) else f"inversion={str(inversion)!r}"
            raise ValueError(f"{given} is given without the photo it was made of: pass the image too.")
        original, (edited,) = self.generator.generate_with_edits(self.generator.preview_latents(num_samples, seed), [edit])
        return BeforeAfter(to_unit_range(original.float().cpu()), to_unit_range(edited.float().cpu()))

    def _photo_edited(self, edit: Edit, image: PhotoSource, inversion: str | os.PathLike | Inversion | None) -> BeforeAfter:
        photo, named = _photo(image), "inversion"
        if not isinstance(inversion, Inversion):
            if inversion is None and isinstance(image, Tensor):
                raise ValueError("image is given as pixels without its inversion: pass inversion, what invert() returned.")
            path = Path(inversion or f"{Path(image).stem}.inversion.pt")
            if not path.is_file():
                raise FileNotFoundError(f"inversion={str(path)!r} is not a file: run panda invert --image {image} first (it writes "
                                        "<photo's name>.inversion.pt), or pass the inversion (--inversion; from Python, what Run.invert returns).")
            inversion, named = Inversion.load(path), f"inversion={str(path)!r}"
        inversion.check_for(self.generator, photo, named)
        reconstructed, edited = inversion.images(self.generator)[0].cpu(), inversion.images(self.generator, edit)[0].cpu()
        return BeforeAfter(photo[None], carry_back(photo, inversion.box, reconstructed, edited)[None], generated=edited[None])

    def _picture(self, edit: Edit, layout: str, num_samples: int, seed: int, image: PhotoSource | None,
                 inversion: str | os.PathLike | Inversion | None) -> Tensor:
        check_layout(layout)  # (before the generator runs)
        return self.edited(edit, num_samples, seed, image, inversion).picture(layout)

    def edit(self, edits: Sequence[tuple[Where, int, float]], num_samples: int = 6, seed: int = 0, layout: str = "rows",
             refine: str | None = None, num_neighbours: int = NUM_NEIGHBOURS, image: PhotoSource | None = None,
             inversion: str | os.PathLike | Inversion | None = None) -> Tensor:
        """``panda edit``: appearances added at parts or masks, ``edits`` of ``(where, appearance,
        alpha)``, ``where`` a part index, a mask (``(H, W)`` in ``[0, 1]``) or a PNG mask's file
        (Sec. 3.3.1). ``layout="rows"``: original | edited | difference; ``"edited"``: the edited images alone."""
        edit = local_edits(self.model, edits, refine, num_neighbours)
        return self._picture(edit, layout, num_samples, seed, image, inversion)

    def remove(self, where: Where, appearance: int | None = None, alpha: float = 3.0, border: int | None = None,
               num_samples: int = 6, seed: int = 0, layout: str = "rows", refine: str | None = None,
               num_neighbours: int = NUM_NEIGHBOURS, image: PhotoSource | None = None,
               inversion: str | os.PathLike | Inversion | None = None) -> Tensor:
        """``panda remove``: what is at a part or mask filled with each sample's background (Sec. 5.2)."""
        edit = object_removal(self.model, where, appearance, alpha, border, refine, num_neighbours)
        return self._picture(edit, layout, num_samples, seed, image, inversion)

    def rewrite(self, source: int, target: int, alpha: float = 1.0, num_samples: int = 6, seed: int = 0,
                layout: str = "rows", image: PhotoSource | None = None, inversion: str | os.PathLike | Inversion | None = None) -> Tensor:
        """``panda rewrite``: appearance ``source`` replaced by ``target`` wherever it is present (Eq. 14-16)."""
        edit = concept_rewrite(self.model, source, target, alpha)
        return self._picture(edit, layout, num_samples, seed, image, inversion)

    # -- what the factors show ------------------------------------------------------------------

    def localisation(self, appearances: Sequence[int], num_samples: int = 6, threshold_samples: int = 512, seed: int = 0) -> Localisation:
        """The saliency maps of ``appearances`` on the samples of ``seed``, and their thresholds, each
        appearance's mean saliency over ``threshold_samples`` held-out samples (Sec. 5.1.2)."""
        count = self.appearances.shape[1]
        indices = [check_index("appearances", j, count, "appearances") for j in appearances]
        shown = self.appearances[:, indices]
        thresholds = mean_saliency(self.data.held_out_batches(threshold_samples), shown)
        latents = self.generator.preview_latents(num_samples, seed)
        maps = saliency_maps(self.generator.activations(latents), shown).float().cpu()
        images = to_unit_range(self.generator.generate(latents).float().cpu())
        return Localisation(images, maps, thresholds.float().cpu(), indices)

    def saliency(self, appearances: Sequence[int], num_samples: int = 6, threshold_samples: int = 512, seed: int = 0) -> Tensor:
        """``panda saliency``: each appearance's map and localisation, one row per sample."""
        return self.localisation(appearances, num_samples, threshold_samples, seed).picture()

    def ranking(self, appearance: int, part: int | None = None, num_samples: int = 256, show: int = 8) -> Ranking:
        """``num_samples`` held-out samples scored by how much of ``appearance`` they hold, overall
        (Eq. 17) or at ``part`` (Eq. 18), with the images of the ``show`` highest and lowest."""
        parts = self.parts
        if part is not None:
            check_index("part", part, parts.shape[1], "parts")
        check_int("show", show, low=1, high=num_samples, why=f"at most num_samples={num_samples}")
        at = None if part is None else parts[:, part : part + 1]
        scores = torch.cat([
            appearance_scores(Z, self.appearances, appearance, at).flatten() for Z in self.data.held_out_batches(num_samples)
        ]).cpu()
        order = scores.argsort(descending=True)
        chosen = torch.cat([order[:show], order[-show:]])
        images = to_unit_range(self.generator.generate(self.generator.held_out_latents(chosen.tolist())).float().cpu())
        return Ranking(scores, images)

    def rank(self, appearance: int, part: int | None = None, num_samples: int = 256, show: int = 8) -> Tensor:
        """``panda rank``: the ``show`` samples with the most of ``appearance`` (top row) and the least."""
        return self.ranking(appearance, part, num_samples, show).picture()

    def refine(self, num_neighbours: int = NUM_NEIGHBOURS, steps: int = 10, num_samples: int = 6, seed: int = 0) -> Tensor:
        """``panda refine``: each sample's own parts, refined from the global ones (Alg. 2, Fig. 8)."""
        return RefinedParts(num_neighbours=num_neighbours, steps=steps, num_samples=num_samples, seed=seed).draw(self.generator, self.model)

    def pictures(self) -> dict[str, Tensor]:
        """The pictures the fit's callbacks drew at its end (``parts``, ``saliency``, ``edits``,
        ``refined_parts``, as configured), drawn again: ``{tag: (3, H, W)}``."""
        return {callback.tag: callback.draw(self.generator, self.model) for callback in self.picture_callbacks}

    # -- photos ---------------------------------------------------------------------------------

    def invert(self, image: PhotoSource, box: Box | str | None = None, settings: InversionSettings = InversionSettings()) -> Inversion:
        """``panda invert``: a photo inverted into the generator at the fitted layer, to edit with
        ``image`` and ``inversion`` (``.save(path)`` writes it). ``box``: the square the generator
        draws, ``Box(x, y, size)`` or ``"x,y,size"``; ``None``: the largest in the photo's middle."""
        photo = _photo(image)
        _, height, width = photo.shape
        box = Box.centred(height, width) if box is None else Box.parse(box) if isinstance(box, str) else box
        box.check(height, width)
        return invert(self.generator, crop(photo, box, self.generator.image_size[0]), settings, box, photo)

    def photo_parts(self, image: PhotoSource, inversion: Inversion, num_neighbours: int = NUM_NEIGHBOURS) -> Tensor:
        """The photo's box and its reconstruction, with the global parts over them and the photo's
        own, refined on its activations (what ``panda invert`` writes as ``<name>.parts.png``)."""
        photo = _photo(image)
        inversion.check_for(self.generator, photo)
        target = crop(photo, inversion.box, self.generator.image_size[0])
        activations = inversion.activations.to(self.generator.device)
        refined = [self.model.refine(activations, affinity, num_neighbours=num_neighbours) for affinity in AFFINITIES]
        _, height, width = self.generator.feature_shape
        labels = ["global parts", *(f"refined: {affinity}" for affinity in AFFINITIES)]
        images = torch.cat([target[None], inversion.images(self.generator).cpu()])
        return refinement_grid(images, [self.parts, *(torch.cat([each, each]) for each in refined)], height, width, labels)


def _photo(image: PhotoSource) -> Tensor:
    return image if isinstance(image, Tensor) else load_photo(image)


# -- loading ------------------------------------------------------------------------------------


def load_run(path: str | os.PathLike, config: str | os.PathLike | None = None, data: GeneratorActivations | None = None,
             device: str | torch.device | None = None, weights_only: bool = True) -> Run:
    """The run ``panda fit`` wrote: ``load_run("runs/panda/version_0")``.

    Args:
        path: the run's folder (its ``checkpoints/last.ckpt`` is read), or a checkpoint of it.
        config: the config it was fitted with; ``None``: the ``config.yaml`` the fit wrote beside its logs.
        data: the :class:`GeneratorActivations` it was fitted on, in place of ``config`` (for a fit
            from Python, which writes no ``config.yaml``).
        device: where the generator and the factors go; ``None``: the GPU if there is one.
        weights_only: load nothing but tensors and plain values (what ``panda fit`` writes); ``False``
            loads what the file asks for, code included: only for a file you trust.
    """
    folder, checkpoint = _folder_and_checkpoint(Path(path))
    read_checkpoint(checkpoint, "path", weights_only)  # one clear line for a file that is not one
    pictures = None
    if data is None:
        config = Path(config) if config is not None else folder / "config.yaml"
        if not config.is_file():
            raise FileNotFoundError(
                f"no config.yaml in the run folder {str(folder)!r} (panda fit writes one beside its logs; a fit from "
                "Python does not): pass config='the YAML the fit was given', or data=GeneratorActivations(...) as the fit had it."
            )
        read = _config(config)
        data, pictures = _data(read), _pictures(read)
    data.generator.to(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    return Run(load_fitted(checkpoint, data.generator, weights_only), data, pictures)


def _folder_and_checkpoint(path: Path) -> tuple[Path, Path]:
    """The run's folder and its checkpoint, from either."""
    if path.is_file():
        return path.parent.parent, path
    if not path.is_dir():
        raise FileNotFoundError(f"path={str(path)!r} is neither a run's folder nor a checkpoint.")
    if (path / "checkpoints" / "last.ckpt").is_file():
        return path, path / "checkpoints" / "last.ckpt"
    runs = sorted((run for run in path.glob("version_*") if (run / "checkpoints").is_dir()), key=lambda run: run.stat().st_mtime)
    if runs:
        raise FileNotFoundError(f"path={str(path)!r} is a folder of runs: pass one of them, such as {str(runs[-1])!r} (the newest).")
    found = sorted(path.glob("checkpoints/*.ckpt"))
    raise FileNotFoundError(
        f"path={str(path)!r} has no checkpoints/last.ckpt" + (f": pass one of {[str(each) for each in found]}." if found else
        ", and no checkpoint at all: pass the folder panda fit wrote (runs/panda/version_N), or a checkpoint.")
    )


def check_same_layer(model: PandA, generator: FrozenGenerator, what: str) -> None:
    """A ``ValueError`` naming both, unless ``model`` was fitted at ``generator``'s layer."""
    shape, layer = tuple(model.hparams.feature_shape), model.hparams.get("layer")
    if shape != tuple(generator.feature_shape) or (layer is not None and layer != generator.layer):
        raise ValueError(
            f"{what} holds factors of layer {layer!r} with activations {shape}, but the configured generator's layer "
            f"{generator.layer!r} gives {tuple(generator.feature_shape)}: use the config the checkpoint was fitted with "
            "(its config.yaml sits beside the logs)."
        )


def load_fitted(checkpoint: str | os.PathLike, generator: FrozenGenerator, weights_only: bool | None = None,
                model_class: type[PandA] = PandA) -> PandA:
    """The checkpoint's model, on the generator's device, after checking it fits the generator's layer."""
    fitted = model_class.load_from_checkpoint(checkpoint, map_location=generator.device, weights_only=weights_only)
    check_same_layer(fitted, generator, f"ckpt_path={str(checkpoint)!r}")
    return fitted.eval()


def _config(path: str | os.PathLike) -> dict[str, Any]:
    if not Path(path).is_file():
        raise FileNotFoundError(f"config={str(path)!r} is not a file; a fit writes RUN/config.yaml.")
    config = yaml.safe_load(Path(path).read_text()) or {}
    if not isinstance(config.get("data"), dict) or "generator" not in config["data"]:
        raise ValueError(f"config={str(path)!r} names no data.generator: it is not a config that panda fit wrote or takes.")
    return config


def data_from_config(path: str | os.PathLike) -> GeneratorActivations:
    """The :class:`GeneratorActivations` that a config's ``data`` section names, as ``panda fit`` built it."""
    return _data(_config(path))


def generator_from_config(path: str | os.PathLike) -> FrozenGenerator:
    """The generator of the ``config.yaml`` that ``panda fit`` wrote beside a run's logs, frozen at its layer."""
    return data_from_config(path).generator


def _data(config: dict[str, Any]) -> GeneratorActivations:
    parser = ArgumentParser()
    parser.add_class_arguments(GeneratorActivations, "data")
    return parser.instantiate_classes(parser.parse_object({"data": config["data"]})).data


def _pictures(config: dict[str, Any]) -> list[FixedSamplePicture]:
    """The picture callbacks among the config's ``trainer.callbacks`` (those of
    :mod:`panda_lightning.callbacks`), as the fit had them."""
    trainer = config.get("trainer")
    callbacks = trainer.get("callbacks") if isinstance(trainer, dict) else None
    pictures = []
    for callback in callbacks if isinstance(callbacks, list) else []:
        module, _, name = str(callback.get("class_path", "")).rpartition(".")
        kind = getattr(importlib.import_module(module), name, None) if module.startswith("panda_lightning.") else None
        if isinstance(kind, type) and issubclass(kind, FixedSamplePicture):
            pictures.append(kind(**(callback.get("init_args") or {})))
    return pictures


def network_and_sampler(data: Any) -> tuple[nn.Module, LatentSampler]:
    """The network and the latents' sampler that a config's ``data`` section names (its
    ``generator`` and ``latents``, as ``class_path`` and ``init_args``)."""
    parser = ArgumentParser()
    parser.add_argument("--generator", type=nn.Module)
    parser.add_argument("--latents", type=GaussianLatents | None)
    built = parser.instantiate(parser.parse_object({"generator": data["generator"], "latents": data.get("latents")}))
    return built.generator.eval(), latent_sampler(built.generator, built.latents)
