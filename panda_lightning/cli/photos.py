"""``panda invert``: a photo, or a folder of them, inverted into the generator at the fitted layer."""

from __future__ import annotations

from pathlib import Path

from lightning.pytorch.utilities import rank_zero_info

from panda_lightning import PandA
from panda_lightning.cli.shared import documents_shared_options, fitted_run, write
from panda_lightning.datamodules import GeneratorActivations
from panda_lightning.functional.refinement import NUM_NEIGHBOURS
from panda_lightning.inversion import InversionSettings
from panda_lightning.photos import load_photo
from panda_lightning.run import Run

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
        run = fitted_run(model, datamodule, ckpt_path, weights_only)
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
                written += _invert_one(run, photo, box, Path(output), settings, num_neighbours)
            except ValueError as error:
                if len(photos) == 1:
                    raise
                failed.append(f"{photo.name}: {error}")
                rank_zero_info(f"{photo.name} not inverted: {error}")
        if failed:
            raise ValueError(f"{len(failed)} of {len(photos)} photos not inverted (the others were): {'; '.join(failed)}")
        return written


def _invert_one(run: Run, path: Path, box: str | None, output: Path, settings: InversionSettings, num_neighbours: int) -> list[Path]:
    photo = load_photo(path)
    inversion = run.invert(photo, box, settings)
    rank_zero_info(f"{path.name}: box {inversion.box}; " + "; ".join(f"{name}: {stage}" for name, stage in inversion.stages.items()))
    stem = output / path.stem
    saved = inversion.save(f"{stem}.inversion.pt")
    rank_zero_info(f"wrote {saved}")
    reconstruction = inversion.images(run.generator)[0].cpu()
    parts = run.photo_parts(photo, inversion, num_neighbours)
    return [saved, write(reconstruction, f"{stem}.reconstruction.png"), write(parts, f"{stem}.parts.png")]
