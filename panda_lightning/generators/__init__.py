"""Generator adapters: the only place that knows about a particular architecture.

An adapter is an ``nn.Module`` whose ``forward(latents)`` returns images in ``[-1, 1]``, which
samples its own latents, conditioning included, with ``sample_latents(num_samples, generator)``
and, optionally, runs the generator from a layer's output on with ``forward_from(layer, Z)``
(edits then skip the layers before it). Any other ``nn.Module`` can be used through
:class:`GaussianLatents` in the DataModule; :func:`load_weights` loads a user's checkpoint with an
error that names what does not match. :class:`StyleGAN2` and :class:`StyleGAN3` read NVIDIA's
network pickles (without running them), :class:`StyleGAN2` rosinality's checkpoints too;
:class:`ProGAN` reads pytorch_GAN_zoo's PGAN checkpoints.
"""

from panda_lightning.generators.biggan import BigGAN
from panda_lightning.generators.face_dcgan import FACE_DCGAN_INSTALL, FaceDCGAN
from panda_lightning.generators.frozen import FrozenGenerator
from panda_lightning.generators.latents import GaussianLatents
from panda_lightning.generators.omniart_eyes import EYE_COLOURS, OMNIART_EYES_INSTALL, OmniartEyes
from panda_lightning.generators.photo_faces import PHOTO_FACES_INSTALL, PhotoFaceDCGAN
from panda_lightning.generators.progan import ProGAN
from panda_lightning.generators.style import StyleGenerator
from panda_lightning.generators.stylegan import StyleGAN2, StyleGAN3
from panda_lightning.generators.weights import load_weights

__all__ = [
    "BigGAN", "EYE_COLOURS", "FACE_DCGAN_INSTALL", "FaceDCGAN", "FrozenGenerator", "GaussianLatents", "OMNIART_EYES_INSTALL",
    "OmniartEyes", "PHOTO_FACES_INSTALL", "PhotoFaceDCGAN", "ProGAN", "StyleGAN2", "StyleGAN3", "StyleGenerator", "load_weights",
]
