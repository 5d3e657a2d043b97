"""Callbacks that render what PandA has learnt; they only read the module's state."""

from panda_lightning.callbacks.edits import EditGrid
from panda_lightning.callbacks.interrupt import CheckpointOnInterrupt
from panda_lightning.callbacks.parts import PartsOverlay
from panda_lightning.callbacks.refinement import RefinedParts
from panda_lightning.callbacks.saliency import SaliencyMaps

__all__ = ["CheckpointOnInterrupt", "EditGrid", "PartsOverlay", "RefinedParts", "SaliencyMaps"]
