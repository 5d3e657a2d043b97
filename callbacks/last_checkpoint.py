"""Lightning's ModelCheckpoint, with ``last.ckpt`` the factors a fit ended with."""

from __future__ import annotations

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint


class LastCheckpoint(ModelCheckpoint):
    """:class:`~lightning.pytorch.callbacks.ModelCheckpoint` (the same arguments) whose
    ``last.ckpt`` is written again when the fit ends, so that it holds the factors of the last step.

    Lightning (2.6) writes ``last.ckpt`` at the end of a fit only when it has written none yet: a
    fit that converges between two ``every_n_train_steps`` would leave in it the factors of the
    save before (those of step 300 for a fit that ended at step 350).
    """

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # save_last="link" makes last.ckpt a link to a top-k file, which must keep its own step.
        if self.save_last is True and self.last_model_path:
            trainer.save_checkpoint(self.last_model_path, weights_only=self.save_weights_only)
        super().on_train_end(trainer, pl_module)
