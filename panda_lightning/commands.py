"""PandA's picture subcommands (``panda edit | remove | saliency | rewrite | rank``) on a fitted checkpoint.

LightningCLI builds the generator and DataModule from the same config as ``panda fit`` and
calls these methods; each loads the checkpoint, checks that it belongs to that generator's
layer, and writes one PNG.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import lightning as L
import torch
from lightning.pytorch.accelerators import CPUAccelerator
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from torch import Tensor, nn

from callbacks.refinement import RefinedParts
from datamodules import GeneratorActivations
from datamodules.latent_stream import LatentSampler
from panda_lightning.editing import (
    appearance_scores,
    border_mask,
    check_index,
    localise,
    remove_object,
    rewrite_concept,
    saliency_maps,
    saliency_sums,
)
from panda_lightning.images import load_mask, saliency_grid, save_png, tile, to_unit_range
from panda_lightning.layers import LayerOutput, layer_outputs
from panda_lightning.module import PandA


VAL_CHECK_INTERVAL = 100


class PandATrainer(L.Trainer):
    """Lightning's Trainer with PandA's picture subcommands, validation every
    ``VAL_CHECK_INTERVAL`` steps unless ``val_check_interval`` says otherwise, and an error for
    impossible devices that says what the machine has."""

    def __init__(self, *args: Any, **kwargs: Any):
        if kwargs.get("val_check_interval") is None:
            # The stream never ends an epoch: validate (and so decide convergence) by steps.
            kwargs["val_check_interval"] = VAL_CHECK_INTERVAL
        try:
            super().__init__(*args, **kwargs)
        except MisconfigurationException as error:
            accelerator, devices = kwargs.get("accelerator", "auto"), kwargs.get("devices", "auto")
            raise MisconfigurationException(
                f"accelerator={accelerator!r} with devices={devices!r} cannot run here: {error} This machine "
                f"has {torch.cuda.device_count()} CUDA device(s) and {os.cpu_count()} CPU cores. To fit on "
                "several CPU processes: --trainer.accelerator cpu --trainer.devices N --trainer.strategy ddp."
            ) from error
        if isinstance(self.accelerator, CPUAccelerator) and self.num_devices > (os.cpu_count() or 1):
            rank_zero_warn(
                f"devices={self.num_devices} CPU processes share {os.cpu_count()} cores: the fit is correct "
                "but slower than with one process per core."
            )

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
            ckpt_path: the fitted checkpoint.
            edits: ``[where, appearance, alpha]`` triples: ``where`` a part index or the path of a
                PNG mask (white = edit; the layer's size or a whole multiple, such as the
                image's), ``alpha`` the strength relative to the layer's typical activation (1
                to 5 is a visible edit).
            num_samples: generated samples, one row each: original | edited | difference.
            seed: seed of the samples' latents.
            output: the PNG to write.
            refine: edit at each sample's own parts, refined from the global ones (Sec. 4.2-4.3)
                with the ``"full"`` or the ``"mutual_knn"`` affinity (Alg. 2); ``None``: the global parts.
            num_neighbours: ``k`` of the mutual kNN graph.
            weights_only: as in ``fit``: how to load the checkpoint.
        """
        fitted = _fitted(model, datamodule, ckpt_path, weights_only)
        resolved = [(_load_if_path(where), j, a) for where, j, a in edits]
        latents = datamodule.preview_latents(num_samples, seed)

        def edit(Z: Tensor) -> Tensor:
            parts = None if refine is None else fitted.refine(Z, refine, num_neighbours=num_neighbours)
            return fitted.local_edit(Z, resolved, parts)

        at = "" if refine is None else f" at parts refined with the {refine} affinity"
        return _before_after(datamodule, latents, edit, output, f"{len(edits)} edit(s){at}")

    def refine(
        self,
        model: PandA,
        datamodule: GeneratorActivations,
        ckpt_path: str,
        num_neighbours: int = 16,
        steps: int = 10,
        num_samples: int = 6,
        seed: int = 0,
        output: str = "refine.png",
        weights_only: bool | None = None,
    ) -> Path:
        """Each sample's own parts, refined from the global parts (Sec. 4.2-4.3, Alg. 2, Fig. 8).

        Args:
            ckpt_path: the fitted checkpoint.
            num_neighbours: ``k`` of the mutual kNN graph, from 1 to ``H * W - 1``.
            steps: projected gradient steps of the refinement.
            num_samples: generated samples, one column each; rows: the samples, the global
                parts, parts refined with the full affinity, and with the mutual-kNN affinity.
            seed: seed of the samples' latents.
            output: the PNG to write.
            weights_only: as in ``fit``: how to load the checkpoint.
        """
        fitted = _fitted(model, datamodule, ckpt_path, weights_only)
        latents = datamodule.preview_latents(num_samples, seed)
        renderer = RefinedParts(num_neighbours=num_neighbours, steps=steps)  # the callback's picture
        return _write(renderer.picture(datamodule, fitted, latents), output)

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
            ckpt_path: the fitted checkpoint.
            where: a part index, or the path of a PNG mask (white = remove).
            appearance: ``None`` fills with each sample's own background, its mean activation
                on the layer's border; an index instead adds that appearance at ``alpha``, as
                the paper does with a background appearance chosen by eye.
            alpha: strength when ``appearance`` is given (see ``edit``).
            border: thickness of the border in layer positions; ``None``: an eighth of the side.
            num_samples: generated samples, one row each: original | removed | difference.
            seed: seed of the samples' latents.
            output: the PNG to write.
            weights_only: as in ``fit``: how to load the checkpoint.
        """
        fitted = _fitted(model, datamodule, ckpt_path, weights_only)
        _, height, width = fitted.hparams.feature_shape
        if appearance is None:
            mask, ring = fitted.mask(_load_if_path(where)), border_mask(height, width, border)
            edit, what = (lambda Z: remove_object(Z, mask, ring)), f"removed {where!r}, filled with each sample's border"
        else:
            edit = lambda Z: fitted.local_edit(Z, [(_load_if_path(where), appearance, alpha)])  # noqa: E731
            what = f"removed {where!r} with appearance {appearance} at alpha {alpha}"
        return _before_after(datamodule, datamodule.preview_latents(num_samples, seed), edit, output, what)

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
            ckpt_path: the fitted checkpoint.
            source: the appearance to replace.
            target: the appearance to put in its place.
            alpha: how much of ``target`` per unit of ``source``.
            num_samples: generated samples, one row each: original | rewritten | difference.
            seed: seed of the samples' latents.
            output: the PNG to write.
            weights_only: as in ``fit``: how to load the checkpoint.
        """
        appearances = _fitted(model, datamodule, ckpt_path, weights_only).appearances.detach()
        latents = datamodule.preview_latents(num_samples, seed)
        edit = lambda Z: rewrite_concept(Z, appearances, source, target, alpha)  # noqa: E731
        return _before_after(datamodule, latents, edit, output, f"appearance {source} -> {target}")

    def saliency(
        self,
        model: PandA,
        datamodule: GeneratorActivations,
        ckpt_path: str,
        appearances: list[int],
        num_samples: int = 6,
        threshold_samples: int = 512,
        seed: int = 0,
        output: str = "saliency.png",
        weights_only: bool | None = None,
    ) -> Path:
        """Where each appearance is: saliency maps and their localisation (Sec. 5.1.2).

        Args:
            ckpt_path: the fitted checkpoint.
            appearances: the appearances to show, two columns each: the map (grey 0, white
                most, black least), and the sample where the map is at least its mean.
            num_samples: generated samples, one row each.
            threshold_samples: samples over which each appearance's mean saliency is taken.
            seed: seed of the samples' latents.
            output: the PNG to write.
            weights_only: as in ``fit``: how to load the checkpoint.
        """
        fitted = _fitted(model, datamodule, ckpt_path, weights_only)
        count_appearances = fitted.appearances.shape[1]
        indices = [check_index("appearances", j, count_appearances, "appearances") for j in appearances]
        shown = fitted.appearances.detach()[:, indices]
        sums, count = torch.zeros(len(appearances), device=shown.device), 0
        for Z in datamodule.held_out_batches(threshold_samples):
            batch_sums, batch_count = saliency_sums(Z, shown)
            sums, count = sums + batch_sums, count + batch_count
        thresholds = sums / count

        latents = datamodule.preview_latents(num_samples, seed)
        maps = saliency_maps(datamodule.activations(latents), shown).float().cpu()
        images = to_unit_range(datamodule.generate(latents).float().cpu())
        rank_zero_info(f"mean saliency (localisation thresholds) of appearances {appearances}: {thresholds.tolist()}")
        return _write(saliency_grid(images, maps, localise(maps, thresholds.cpu())), output)

    def rank(
        self,
        model: PandA,
        datamodule: GeneratorActivations,
        ckpt_path: str,
        appearance: int,
        part: int | None = None,
        num_samples: int = 256,
        show: int = 8,
        output: str = "rank.png",
        weights_only: bool | None = None,
    ) -> Path:
        """Rank samples by how much of an appearance they hold, overall (Eq. 17) or at one part
        (Eq. 18); writes the ``show`` highest (top row) and lowest (bottom row).

        Args:
            ckpt_path: the fitted checkpoint.
            appearance: the appearance to rank by.
            part: rank by the appearance at this part only; ``None`` ranks over the whole image.
            num_samples: held-out samples to rank.
            show: samples shown in each row.
            output: the PNG to write.
            weights_only: as in ``fit``: how to load the checkpoint.
        """
        fitted = _fitted(model, datamodule, ckpt_path, weights_only)
        appearances, parts = fitted.appearances.detach(), fitted.parts.detach()
        if part is not None:
            check_index("part", part, parts.shape[1], "parts")
        if not 1 <= show <= num_samples:
            raise ValueError(f"show={show} must be from 1 to num_samples={num_samples}.")
        scores = torch.cat([
            appearance_scores(Z, appearances, appearance, None if part is None else parts[:, part : part + 1]).flatten()
            for Z in datamodule.held_out_batches(num_samples)
        ]).cpu()
        order = scores.argsort(descending=True)
        chosen = torch.cat([order[:show], order[-show:]])
        images = to_unit_range(datamodule.generate(datamodule.held_out_latents(chosen.tolist())).float().cpu())
        rank_zero_info(f"highest scores {scores[order[:show]].tolist()}, lowest {scores[order[-show:]].tolist()}")
        return _write(tile(images.view(2, show, *images.shape[1:])), output)

    def layers(
        self,
        model: PandA | None,
        datamodule: ConfiguredGenerator,
        ckpt_path: str | None = None,
        weights_only: bool | None = None,
    ) -> list[LayerOutput]:
        """List the generator's layers with their output shapes, to choose data.layer.

        Runs one sample through the configured generator and prints each layer in the order the
        forward pass computes it, with the elements of tuple and dict outputs apart
        (``synthesis.b16[0]``); ``*`` marks the feature maps ``(N, C, H, W)`` PandA can factorise.
        The configured ``data.layer`` need not be valid: it is checked last.

        Args:
            ckpt_path: not used; accepted, as ``weights_only`` is, so that the ``config.yaml``
                a fit writes can be given as it is.
            weights_only: not used.
        """
        generator = datamodule.generator
        latents = datamodule.sampler(1, torch.Generator().manual_seed(0))
        rows = layer_outputs(generator, lambda: generator(latents))
        print(_layer_table(rows, type(generator).__name__, datamodule.layer))
        return rows


class ConfiguredGenerator(NamedTuple):
    """What ``panda layers`` builds from a config in place of the DataModule, which needs a valid layer."""

    generator: nn.Module
    sampler: LatentSampler
    layer: str


def _layer_table(rows: list[LayerOutput], generator: str, configured: str) -> str:
    width = max(len(row.layer) for row in rows)
    lines = [
        f"Layers of {generator} on one sample, in the order the forward pass computes them; "
        "* marks a feature map (N, C, H, W) that data.layer can name:"
    ]
    for row in rows:
        notes = {0: ["not run by forward(): a container, or unused"], 1: []}.get(
            row.calls, [f"runs {row.calls} times: its first output counts"]
        )
        notes += ["<- data.layer"] if row.layer == configured else []
        lines.append(f"{'*' if row.usable else ' '} {row.layer:<{width}}  {row.output:<18}  {'; '.join(notes)}".rstrip())
    usable = [row.layer for row in rows if row.usable]
    chosen = next((row for row in rows if row.layer == configured), None)
    elements = [name for name in usable if name.startswith(configured + "[")]
    if chosen is not None and chosen.usable:
        verdict = f"data.layer={configured!r} outputs {chosen.output}: PandA can factorise it."
    elif chosen is not None:
        verdict = f"data.layer={configured!r} outputs {chosen.output}, not a feature map (N, C, H, W): choose a layer marked *."
    elif elements:
        verdict = f"data.layer={configured!r} outputs several tensors: name one, such as {elements[0]!r}."
    else:
        close = difflib.get_close_matches(configured, usable, n=3)
        hint = f" (did you mean {', '.join(map(repr, close))}?)" if close else ""
        verdict = f"data.layer={configured!r} is none of these layers{hint}: choose a layer marked *."
    return "\n".join(lines + [verdict])


def _fitted(model: PandA, datamodule: GeneratorActivations, ckpt_path: str, weights_only: bool | None) -> PandA:
    """The checkpoint's model, on the generator's device, after checking it fits the generator's layer."""
    if not Path(ckpt_path).is_file():
        raise FileNotFoundError(f"ckpt_path={ckpt_path!r} is not a file; pass the checkpoint written by `panda fit`.")
    fitted = type(model).load_from_checkpoint(ckpt_path, map_location=datamodule.device, weights_only=weights_only)
    shape, layer = tuple(fitted.hparams.feature_shape), fitted.hparams.get("layer")
    if shape != tuple(datamodule.feature_shape) or (layer is not None and layer != datamodule.layer):
        raise ValueError(
            f"ckpt_path={ckpt_path!r} holds factors of layer {layer!r} with activations {shape}, but the "
            f"configured generator's layer {datamodule.layer!r} gives {tuple(datamodule.feature_shape)}: "
            "use the config the checkpoint was fitted with (its config.yaml sits beside the logs)."
        )
    return fitted.eval()


def _load_if_path(where: int | str) -> int | Tensor:
    """A part index as it is; a mask file read."""
    return load_mask(where) if isinstance(where, str) else where


def _before_after(
    datamodule: GeneratorActivations, latents: Tensor, edit: Callable[[Tensor], Tensor], output: str, what: str
) -> Path:
    original, (edited,) = datamodule.generate_with_edits(latents, [edit])
    original, edited = to_unit_range(original.float().cpu()), to_unit_range(edited.float().cpu())
    difference = (edited - original).abs().sum(dim=1, keepdim=True)
    difference = (difference / difference.amax().clamp_min(1e-12)).expand_as(original)
    rank_zero_info(f"{what}: mean absolute change per pixel {(edited - original).abs().mean().item():.4f}")
    return _write(tile(torch.stack([original, edited, difference], dim=1)), output)


def _write(picture: Tensor, output: str) -> Path:
    path = save_png(picture, output)
    rank_zero_info(f"wrote {path}")
    return path
