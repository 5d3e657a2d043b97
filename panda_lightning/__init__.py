"""panda-lightning: parts and appearances of a pretrained GAN's layers (PandA) in Lightning."""

from panda_lightning.module import PandA

__all__ = ["PandA"]
