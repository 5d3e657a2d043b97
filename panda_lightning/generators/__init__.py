"""Generators: the only place that knows about a particular architecture, in three rooms, and
the machinery every generator goes through.

- :mod:`~panda_lightning.generators.adapters`: the generators configs name. An adapter is an
  ``nn.Module`` whose ``forward(latents)`` returns images in ``[-1, 1]``, which samples its own
  latents, conditioning included, with ``sample_latents(num_samples, generator)`` and, optionally,
  runs from a layer's output on with ``forward_from(layer, Z)`` (edits then skip the layers
  before it). :class:`StyleGAN2` and :class:`StyleGAN3` read NVIDIA's network pickles (without
  running them), :class:`StyleGAN2` rosinality's checkpoints too; :class:`ProGAN` reads
  pytorch_GAN_zoo's PGAN checkpoints; the others load an installed package's weights.
- :mod:`~panda_lightning.generators.networks`: the networks, in plain PyTorch.
- :mod:`~panda_lightning.generators.formats`: readers of other people's files.
- :class:`FrozenGenerator` (``frozen``): a generator frozen and read or edited at one layer;
  ``layers`` holds its hooks, ``latents`` how samples' latents are drawn. Any other ``nn.Module``
  works through :class:`GaussianLatents`; :func:`load_weights` loads a user's checkpoint with an
  error that names what does not match.
"""

from panda_lightning.generators.adapters.biggan import BigGAN
from panda_lightning.generators.adapters.face_dcgan import FACE_DCGAN_INSTALL, FaceDCGAN
from panda_lightning.generators.adapters.omniart_eyes import EYE_COLOURS, OMNIART_EYES_INSTALL, OmniartEyes
from panda_lightning.generators.adapters.photo_faces import PHOTO_FACES_INSTALL, PhotoFaceDCGAN
from panda_lightning.generators.adapters.progan import ProGAN
from panda_lightning.generators.adapters.style import StyleGenerator
from panda_lightning.generators.adapters.stylegan import StyleGAN2, StyleGAN3
from panda_lightning.generators.formats.weights import load_weights
from panda_lightning.generators.frozen import FrozenGenerator
from panda_lightning.generators.latents import GaussianLatents

__all__ = [
    "BigGAN", "EYE_COLOURS", "FACE_DCGAN_INSTALL", "FaceDCGAN", "FrozenGenerator", "GaussianLatents", "OMNIART_EYES_INSTALL",
    "OmniartEyes", "PHOTO_FACES_INSTALL", "PhotoFaceDCGAN", "ProGAN", "StyleGAN2", "StyleGAN3", "StyleGenerator", "load_weights",
]
