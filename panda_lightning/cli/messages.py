"""What ``panda fit`` says beyond Lightning: nothing of the third-party noise at its start, and
a block at its end with the outcome, what the fit left where, and what to run next."""

from __future__ import annotations

import logging
import os
import shlex
import warnings
from pathlib import Path

import lightning as L

from panda_lightning.callbacks.rendering import FixedSamplePicture
from panda_lightning.fitting.module import PandA


def fit_summary(trainer: L.Trainer, model: PandA) -> str:
    """The block that ends ``panda fit``: the outcome, what the fit left where, and what to run next."""
    log_dir = Path(trainer.log_dir or trainer.default_root_dir)
    checkpoint = trainer.checkpoint_callback.last_model_path if trainer.checkpoint_callback else ""
    pictures = [c.last_path for c in trainer.callbacks if isinstance(c, FixedSamplePicture) and c.last_path]
    held_out = trainer.callback_metrics.get("val/relative_error")
    if held_out is None:
        outcome = f"stopped at step {trainer.global_step} without a held-out error (see the warning above)"
    elif model.convergence.converged:
        outcome = f"converged at step {trainer.global_step}, held-out relative error {held_out.item():.5f} (best {model.convergence.best:.5f})"
    else:
        outcome = (
            f"stopped at step {trainer.global_step} before converging, held-out relative error {held_out.item():.5f} "
            f"(best {model.convergence.best:.5f}); raise --trainer.max_steps to fit further"
        )
    lines = [f"Fit done: {outcome}."]
    if checkpoint:
        lines.append(f"  checkpoint  {_relative(checkpoint)}")
    if pictures:
        folders = {_relative(path.parent) for path in pictures}
        where = f" in {folders.pop()}" if len(folders) == 1 else ""
        lines.append(f"  pictures    {', '.join(path.name if where else _relative(path) for path in pictures)}{where}")
    if trainer.logger is not None:
        lines.append(f"  logs        tensorboard --logdir {_relative(log_dir)}")
    config = log_dir / "config.yaml"
    if checkpoint and config.is_file():
        run_args = f"--config {shlex.quote(_relative(config))} --ckpt_path {shlex.quote(_relative(checkpoint))}"
        lines.append("Next: edit one sample's part 0 with appearance 1 (parts.png names the parts):")
        lines.append(f"  panda edit {run_args} --edits '[[0, 1, 3.0]]'")
    return "\n".join(lines)


def _relative(path: str | os.PathLike) -> str:
    path = Path(path)
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


class _DropMessages(logging.Filter):
    """Drops the log records that start with one of ``prefixes``."""

    def __init__(self, *prefixes: str):
        super().__init__()
        self.prefixes = prefixes

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefixes)


def quiet_third_party_noise() -> None:
    """Silence the messages at the start of a fit that a user can do nothing about, by their
    exact text; every other warning, ours included, still shows."""
    # Our checkpoints hold the factors after each step's update, as we want; Lightning's
    # warning about manual optimisation with every_n_train_steps does not apply.
    warnings.filterwarnings("ignore", message="Using ModelCheckpoint with manual optimization")
    # Lightning 2.6 on torch 2.13: its own use of a deprecated torch API.
    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")
    # An advertisement, printed at every start.
    noise = _DropMessages("💡 Tip: For seamless cloud logging")
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropMessages) for f in logger.filters):
            logger.addFilter(noise)
