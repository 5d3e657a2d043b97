"""Leave a resumable checkpoint when a fit is stopped: SIGTERM from a scheduler, Ctrl+C, an error."""

from __future__ import annotations

import os
import signal
from types import FrameType
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Checkpoint
from lightning.pytorch.utilities import rank_zero_info
from lightning.pytorch.utilities.exceptions import SIGTERMException

from panda_lightning.lightning_internals import checkpoint_contents


class CheckpointOnInterrupt(Checkpoint):
    """Writes ``<log_dir>/checkpoints/<filename>.ckpt`` (or into ``dirpath``) when the fit stops
    on an exception, as Lightning's ``OnExceptionCheckpoint`` does, and removes it when a fit
    ends normally; and a SIGTERM handler that is safe with several processes.

    Not an ``OnExceptionCheckpoint``: given one, ``Trainer.fit(ckpt_path=None)`` looks for a
    checkpoint to resume from, before the run's folder is known (so in the working directory),
    and warns twice about it. A fit here resumes only from the ``--ckpt_path`` a user gives.

    Lightning's own handler broadcasts from inside the signal handler, which can interleave with
    a collective of the training step and leave DDP processes waiting on each other for good.
    Here the handler only raises a flag; at the end of each batch the processes agree on it
    (one small all-reduce) and all stop together, so every rank ends within a step and the
    checkpoint holds a whole step. Resume with ``--ckpt_path`` on that file.

    An exception raised on some processes only (a process killed or out of memory, an error on
    one rank) cannot wait for a collective save: rank 0 writes the file alone, and the message
    says that another process may have ended first.

    Args:
        dirpath: folder of the checkpoint; ``None``: the run's ``checkpoints`` folder.
        filename: file name without the extension.
    """

    def __init__(self, dirpath: str | None = None, filename: str = "interrupted"):
        super().__init__()
        if not filename:
            raise ValueError("filename='' is empty: name the checkpoint file (without .ckpt), such as 'interrupted'.")
        # A path from the start: an exception can come before setup.
        self.dirpath, self.filename = dirpath or ".", filename
        self._dirpath_given = dirpath is not None
        self._terminated = False
        self._previous_handler: Any = None

    @property
    def ckpt_path(self) -> str:
        return os.path.join(self.dirpath, f"{self.filename}.ckpt")

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if not self._dirpath_given:
            self.dirpath = os.path.join(trainer.log_dir or trainer.default_root_dir, "checkpoints")

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Lightning installs its handler just before training starts: replace it now.
        self._terminated = False
        self._previous_handler = signal.signal(signal.SIGTERM, self._on_sigterm)

    def _on_sigterm(self, signum: int, _frame: FrameType | None) -> None:
        self._terminated = True

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        if trainer.strategy.reduce_boolean_decision(self._terminated, all=False):
            rank_zero_info(f"SIGTERM: stopping after step {trainer.global_step}.")
            raise SIGTERMException()

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        if trainer.world_size == 1 or isinstance(exception, SIGTERMException):
            trainer.save_checkpoint(self.ckpt_path)  # every rank is here: the collective save
        elif trainer.is_global_zero:
            # Raised on some ranks only (a lost process, an error on one rank): a collective save
            # would wait for ranks that may never come. PandA undoes a half-done step, so the
            # factors are those of global_step, the same on every rank: rank 0 writes alone.
            trainer.strategy.checkpoint_io.save_checkpoint(checkpoint_contents(trainer), self.ckpt_path)
        rank_zero_info(
            f"{type(exception).__name__} at step {trainer.global_step}: saved {self.ckpt_path}; "
            f"resume with --ckpt_path {self.ckpt_path}."
            + (" With several processes, an error about a lost connection means that another "
               "process of the fit ended first (killed, out of memory): look at its log for why."
               if trainer.world_size > 1 else "")
        )

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self._previous_handler is not None:
            signal.signal(signal.SIGTERM, self._previous_handler)
            self._previous_handler = None
        # Lightning calls teardown only after a fit that ended without an exception: a file
        # left from an earlier interruption is stale now.
        trainer.strategy.remove_checkpoint(self.ckpt_path)
