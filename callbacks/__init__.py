"""Callbacks that render what PandA has learnt; they only read the module's state."""

from callbacks.parts import PartsOverlay

__all__ = ["PartsOverlay"]
