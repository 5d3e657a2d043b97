"""Callbacks that render what PandA has learnt; they only read the module's state."""

from callbacks.edits import EditGrid
from callbacks.interrupt import CheckpointOnInterrupt
from callbacks.parts import PartsOverlay
from callbacks.refinement import RefinedParts
from callbacks.saliency import SaliencyMaps

__all__ = ["CheckpointOnInterrupt", "EditGrid", "PartsOverlay", "RefinedParts", "SaliencyMaps"]
