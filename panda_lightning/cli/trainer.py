"""PandATrainer: Lightning's Trainer with PandA's defaults and its subcommands on a checkpoint."""

from __future__ import annotations

import os
from typing import Any

import lightning as L
import torch
from lightning.pytorch.accelerators import CPUAccelerator
from lightning.pytorch.utilities import rank_zero_warn
from lightning.pytorch.utilities.exceptions import MisconfigurationException

from panda_lightning.cli.app import AppCommand
from panda_lightning.cli.edits import EditCommands
from panda_lightning.cli.inspection import InspectionCommands
from panda_lightning.cli.photos import PhotoCommands

VAL_CHECK_INTERVAL = 50


class PandATrainer(EditCommands, InspectionCommands, PhotoCommands, AppCommand, L.Trainer):
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

