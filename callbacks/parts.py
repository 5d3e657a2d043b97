"""Render the learnt parts over a few fixed generated images, to TensorBoard and to a PNG."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only

from panda_lightning.images import parts_grid, save_png, to_unit_range


class PartsOverlay(L.Callback):
    """Every ``every_n_steps`` steps and at the end of the fit, draw each part over
    ``num_samples`` fixed images: TensorBoard image ``parts`` and ``<log_dir>/<filename>``.

    Args:
        num_samples: rows of the picture, one generated image each.
        every_n_steps: how often to draw during the fit; 0 draws only at the end.
        seed: seed of the fixed latents, so pictures are comparable across steps and runs.
        filename: the PNG written beside the logs at the end of the fit.
    """

    def __init__(self, num_samples: int = 4, every_n_steps: int = 0, seed: int = 1234, filename: str = "parts.png"):
        super().__init__()
        if num_samples < 1:
            raise ValueError(f"num_samples={num_samples} must be a positive integer.")
        if every_n_steps < 0:
            raise ValueError(f"every_n_steps={every_n_steps} must be 0 (only at the end) or more.")
        self.num_samples = num_samples
        self.every_n_steps = every_n_steps
        self.seed = seed
        self.filename = filename
        self.last_path: Path | None = None

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args) -> None:
        step = trainer.global_step
        if self.every_n_steps and step % self.every_n_steps == 0:
            self._render(trainer, pl_module, to_file=False)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._render(trainer, pl_module, to_file=True)

    @rank_zero_only
    @torch.no_grad()
    def _render(self, trainer: L.Trainer, pl_module: L.LightningModule, to_file: bool) -> None:
        datamodule = trainer.datamodule
        _, height, width = pl_module.hparams.feature_shape
        latents = datamodule.preview_latents(self.num_samples, self.seed)
        images = to_unit_range(datamodule.generate(latents).float().cpu())
        picture = parts_grid(images, pl_module.parts.detach(), height, width)
        if isinstance(trainer.logger, TensorBoardLogger):
            trainer.logger.experiment.add_image("parts", picture, trainer.global_step)
        if to_file:
            directory = trainer.log_dir or trainer.default_root_dir
            self.last_path = save_png(picture, Path(directory) / self.filename)
