"""LightningDataModules: latents -> frozen generator -> activations at a named layer."""

from datamodules.activations import GeneratorActivations

__all__ = ["GeneratorActivations"]
