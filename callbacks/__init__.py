"""Callbacks that render what PandA has learnt; they only read the module's state."""

from panda_lightning.callbacks.edit_grid import EditGrid
from panda_lightning.callbacks.interrupt import CheckpointOnInterrupt
from panda_lightning.callbacks.last_checkpoint import LastCheckpoint
from panda_lightning.callbacks.parts_overlay import PartsOverlay
from panda_lightning.callbacks.refined_parts import RefinedParts
from panda_lightning.callbacks.saliency_maps import SaliencyMaps

__all__ = ["CheckpointOnInterrupt", "EditGrid", "LastCheckpoint", "PartsOverlay", "RefinedParts", "SaliencyMaps"]
