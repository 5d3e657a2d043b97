"""The shared shape of our picture callbacks: fixed samples, drawn every N steps and at the end."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only
from torch import Tensor

from panda_lightning.functional.validation import check_int
from panda_lightning.generators.frozen import FrozenGenerator
from panda_lightning.images import at_most, save_png, to_unit_range


class FixedSamplePicture(L.Callback):
    """Draws :meth:`picture` of ``num_samples`` fixed generated samples every ``every_n_steps``
    steps and at the end of the fit: to TensorBoard as image ``tag`` (skipped quietly with
    another logger) and, at the end, to ``<log_dir>/<filename>``. Only reads the module.

    Args:
        num_samples: generated samples in the picture.
        every_n_steps: how often to draw during the fit; 0 draws only at the end.
        seed: seed of the fixed latents, so pictures are comparable across steps and runs.
        filename: the PNG written beside the logs at the end of the fit.
    """

    tag = "picture"

    def __init__(self, num_samples: int = 4, every_n_steps: int = 0, seed: int = 1234, filename: str | None = None):
        super().__init__()
        self.num_samples = check_int("num_samples", num_samples, low=1)
        self.every_n_steps = check_int("every_n_steps", every_n_steps, low=0, why="0: only at the end of the fit")
        self.seed = seed
        self.filename = filename or f"{self.tag}.png"
        self.last_path: Path | None = None

    def picture(self, generator: FrozenGenerator, pl_module: L.LightningModule, latents: Tensor) -> Tensor:
        """``(3, H, W)`` in ``[0, 1]``."""
        raise NotImplementedError

    @torch.no_grad()
    def draw(self, generator: FrozenGenerator, pl_module: L.LightningModule) -> Tensor:
        """:meth:`picture` of this callback's fixed samples, ``(3, H, W)`` in ``[0, 1]``, the module in eval mode."""
        was_training = pl_module.training
        pl_module.eval()
        try:
            return self.picture(generator, pl_module, generator.preview_latents(self.num_samples, self.seed))
        finally:
            pl_module.train(was_training)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args) -> None:
        if self.every_n_steps and trainer.global_step % self.every_n_steps == 0:
            self.render(trainer, pl_module, directory=None)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # On every process: with several, log_dir is a broadcast, which rank 0 alone would wait on.
        self.render(trainer, pl_module, directory=trainer.log_dir or trainer.default_root_dir)
        # The others wait for rank 0 to finish drawing: a process that leaves the fit while
        # rank 0 still draws aborted at exit in 4 of 12 two-process ddp_spawn fits here.
        trainer.strategy.barrier("FixedSamplePicture.on_train_end")

    @rank_zero_only
    def render(self, trainer: L.Trainer, pl_module: L.LightningModule, directory: str | None) -> None:
        """Draw the picture of the fit's generator (``trainer.datamodule.generator``), to TensorBoard
        and, given a ``directory``, to :attr:`filename` there (:attr:`last_path`)."""
        picture = self.draw(trainer.datamodule.generator, pl_module)
        if isinstance(trainer.logger, TensorBoardLogger):
            trainer.logger.experiment.add_image(self.tag, picture, trainer.global_step)
        if directory is not None:
            self.last_path = save_png(picture, Path(directory) / self.filename)


def generated_cells(generator: FrozenGenerator, latents: Tensor) -> Tensor:
    """The images of ``latents`` as :func:`picture_cells`, generated one at a time, so that a
    large generator's intermediate activations are held for one sample, not for all of them."""
    return torch.cat([picture_cells(generator.generate(latent[None])) for latent in latents])


def picture_cells(images: Tensor) -> Tensor:
    """Generator output ``(N, 3, H, W)`` as picture cells: in ``[0, 1]``, on the CPU, at most
    :data:`panda_lightning.images.LARGEST_SIZE` a side, shrunk before anything is drawn over
    them, so that a 1024 px generator's pictures cost little memory."""
    return at_most(to_unit_range(images.float().cpu()))
