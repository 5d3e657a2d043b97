"""Leave a resumable checkpoint when a fit is stopped: SIGTERM from a scheduler, Ctrl+C, an error."""

from __future__ import annotations

import os

import lightning as L
from lightning.pytorch.callbacks import OnExceptionCheckpoint


class CheckpointOnInterrupt(OnExceptionCheckpoint):
    """Lightning's ``OnExceptionCheckpoint``, writing ``<log_dir>/checkpoints/<filename>.ckpt``
    unless ``dirpath`` is given. Lightning turns SIGTERM into an exception in the training
    loop, so a terminated fit saves here and ends; resume with ``--ckpt_path`` on that file.

    Args:
        dirpath: folder of the checkpoint; ``None``: the run's ``checkpoints`` folder.
        filename: file name without the extension.
    """

    def __init__(self, dirpath: str | None = None, filename: str = "interrupted"):
        super().__init__(dirpath or ".", filename)
        self._dirpath_given = dirpath is not None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if not self._dirpath_given:
            self.dirpath = os.path.join(trainer.log_dir or trainer.default_root_dir, "checkpoints")
