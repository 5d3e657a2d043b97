"""LightningDataModules: latents -> frozen generator -> activations at a named layer."""

from panda_lightning.datamodules.activations import GeneratorActivations

__all__ = ["GeneratorActivations"]
