"""The pretrained 64x64 DCGAN of face photos of ``generateme``."""

from __future__ import annotations

import re

from torch import Tensor, nn

from panda_lightning.generators.networks.dcgan import SequentialDCGAN, dcgan_block
from panda_lightning.generators.formats.weights import installed_file, load_state
from panda_lightning.loading import load_tensors

PHOTO_FACES_INSTALL = "pip install --no-deps generateme==0.1.2"
WEIGHTS = "static/Models/dcGanGeneratorModel.pt"


def sequential_names(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """The package's names (``convTr2.weight``, ``batchNorm2.bias``) as ``main.K`` of the
    ``nn.Sequential`` whose blocks are transposed convolution, batch norm, ReLU."""
    renamed = {}
    for name, tensor in state.items():
        found = re.fullmatch(r"(convTr|batchNorm)(\d+)\.(.+)", name)
        if found is None:
            renamed[name] = tensor  # left for load_state to name as unexpected
            continue
        kind, block, rest = found.groups()
        renamed[f"main.{3 * (int(block) - 1) + (kind == 'batchNorm')}.{rest}"] = tensor
    return renamed


class PhotoFaceDCGAN(SequentialDCGAN):
    """The pretrained 64x64 DCGAN of face photos (CelebA-like: real people, hair and
    backgrounds) of ``generateme==0.1.2`` (MIT).

    Four blocks of transposed convolution, batch norm and ReLU, then a transposed convolution
    to RGB and tanh; ``z ~ N(0, I_100)`` as ``(100, 1, 1)``. The layers worth decomposing are
    the ReLU outputs ``main.5`` (256 x 8 x 8), ``main.8`` (128 x 16 x 16) and ``main.11``
    (64 x 32 x 32). The package is never imported (its import needs torchvision and matplotlib
    and writes an image file): its weights file is read as tensors only.

    Args:
        pretrained: load the package's weights; ``False`` keeps the random initialisation.
    """

    def __init__(self, pretrained: bool = True):
        super().__init__()
        self.main = nn.Sequential(
            *dcgan_block(self.latent_dim, 512, first=True),
            *dcgan_block(512, 256), *dcgan_block(256, 128), *dcgan_block(128, 64),
            nn.ConvTranspose2d(64, 3, 4, 2, 1, bias=False),
            nn.Tanh(),
        )
        if pretrained:
            path = installed_file("generateme", WEIGHTS, "PhotoFaceDCGAN", PHOTO_FACES_INSTALL)
            state = load_tensors(path, f"the package's {WEIGHTS}")
            load_state(self, sequential_names(state), f"the package's {WEIGHTS}")
