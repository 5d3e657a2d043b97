"""``panda invert``: a photo, or a folder of them, inverted into the generator at the fitted layer."""

from __future__ import annotations

from pathlib import Path

import torch
from lightning.pytorch.utilities import rank_zero_info

from panda_lightning import PandA
from panda_lightning.cli.shared import documents_shared_options, load_fitted, write
from panda_lightning.datamodules import GeneratorActivations
from panda_lightning.functional.refinement import AFFINITIES, NUM_NEIGHBOURS
from panda_lightning.generators.frozen import FrozenGenerator
from panda_lightning.images import refinement_grid
from panda_lightning.inversion import InversionSettings, invert
from panda_lightning.photos import Box, crop, load_photo

PHOTO_SUFFIXES = (".png", ".jpg", ".jpeg")


class PhotoCommands:
    """The Trainer's ``invert`` subcommand."""

    @documents_shared_options
    def invert(
        self,
        model: PandA,
        datamodule: GeneratorActivations,
        ckpt_path: str,
        image: str,
        box: str | None = None,
        output: str = ".",
        settings: InversionSettings = InversionSettings(),
        num_neighbours: int = NUM_NEIGHBOURS,
        weights_only: bool | None = None,
    ) -> list[Path]:
        """Invert a photo into the generator at the fitted layer, to edit it with ``panda edit --image``
        (Sec. 3.3.1) as a generated sample: its latents are searched, then its activations at the
        layer refined. Writes, for ``me.jpg``, ``me.inversion.pt`` (what ``panda edit --image me.jpg``
        reads), ``me.reconstruction.png`` (the generator's image of the box) and ``me.parts.png``
        (the box, the global parts over it, and the photo's own parts, refined on it).

        Args:
            image: a PNG or JPEG photo, or a folder of them (each inverted; one that cannot be is
                named, and the others are done).
            box: the square of the photo the generator draws, ``x,y,size`` in pixels (the bundled
                generators draw faces centred with their hair); ``None``: the largest square in
                the photo's middle.
            output: the folder to write to.
            settings: how the photo is inverted (``--settings.layer_steps 300``, ...).
            num_neighbours: ``k`` of the mutual kNN graph of the photo's refined parts.
        """
        generator = datamodule.generator
        fitted = load_fitted(model, generator, ckpt_path, weights_only)
        source = Path(image)
        if source.is_dir():
            photos = sorted(path for path in source.iterdir() if path.suffix.lower() in PHOTO_SUFFIXES)
            if not photos:
                raise ValueError(f"image={image!r} is a folder with no PNG or JPEG photo in it.")
        elif source.is_file():
            photos = [source]
        else:
            raise FileNotFoundError(f"image={image!r} is neither a photo nor a folder of photos.")
        written, failed = [], []
        for photo in photos:
            try:
                written += _invert_one(fitted, generator, photo, box, Path(output), settings, num_neighbours)
            except ValueError as error:
                if len(photos) == 1:
                    raise
                failed.append(f"{photo.name}: {error}")
                rank_zero_info(f"{photo.name} not inverted: {error}")
        if failed:
            raise ValueError(f"{len(failed)} of {len(photos)} photos not inverted (the others were): {'; '.join(failed)}")
        return written


def _invert_one(
    fitted: PandA, generator: FrozenGenerator, path: Path, box_text: str | None, output: Path,
    settings: InversionSettings, num_neighbours: int,
) -> list[Path]:
    photo = load_photo(path)
    _, height, width = photo.shape
    box = (Box.centred(height, width) if box_text is None else Box.parse(box_text)).check(height, width)
    target = crop(photo, box, generator.image_size[0])
    inversion = invert(generator, target, settings, box, photo)
    rank_zero_info(f"{path.name}: box {box}; " + "; ".join(f"{name}: {stage}" for name, stage in inversion.stages.items()))
    stem = output / path.stem
    saved = inversion.save(f"{stem}.inversion.pt")
    rank_zero_info(f"wrote {saved}")
    reconstruction = inversion.images(generator).cpu()
    activations = inversion.activations.to(generator.device)
    refined = [fitted.refine(activations, affinity, num_neighbours=num_neighbours) for affinity in AFFINITIES]
    _, layer_height, layer_width = generator.feature_shape
    labels = ["global parts", *(f"refined: {affinity}" for affinity in AFFINITIES)]
    parts = refinement_grid(torch.cat([target[None], reconstruction]), [fitted.parts.detach(), *(
        torch.cat([each, each]) for each in refined)], layer_height, layer_width, labels)
    return [saved, write(reconstruction[0], f"{stem}.reconstruction.png"), write(parts, f"{stem}.parts.png")]
