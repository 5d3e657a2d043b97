"""The pretrained 64x64 face DCGAN of ``gan-face-generate``."""

from __future__ import annotations

from importlib import resources

from panda_lightning.generators.networks.dcgan import SequentialDCGAN
from panda_lightning.loading import load_tensors

FACE_DCGAN_INSTALL = "pip install --no-deps gan-face-generate==1.1.1"


class FaceDCGAN(SequentialDCGAN):
    """The pretrained 64x64 face DCGAN of ``gan-face-generate==1.1.1`` (DigiFace1M, MIT).

    Layers worth decomposing are the ReLU outputs ``main.5`` (256 x 8 x 8), ``main.8``
    (128 x 16 x 16) and ``main.11`` (64 x 32 x 32).

    Args:
        pretrained: load the bundled weights; ``False`` keeps the random initialisation.
    """

    def __init__(self, pretrained: bool = True):
        super().__init__()
        try:
            from gan_face_generate import models
        except ImportError as error:
            raise ImportError(
                f"FaceDCGAN needs the package gan-face-generate; install it with `{FACE_DCGAN_INSTALL}` "
                "(--no-deps: its declared dependencies are not needed)."
            ) from error
        generator = models.Generator(0, 3, self.latent_dim, 64)
        if pretrained:
            weights = resources.files("gan_face_generate") / "weights.tar"
            with resources.as_file(weights) as path:
                state = load_tensors(path, "the package's weights.tar")
            generator.load_state_dict(state["netG_state_dict"])
        # Keep the wrapped model's own layer names ("main.8"), as users know them.
        self.main = generator.main
