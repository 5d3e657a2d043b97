"""The pretrained 128x128 class-conditional eye DCGAN of ``omniart-eye-generator``."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from panda_lightning.generators.networks.dcgan import SequentialDCGAN, dcgan_block
from panda_lightning.generators.formats.weights import installed_file, load_weights

OMNIART_EYES_INSTALL = "pip install --no-deps omniart-eye-generator==0.1"
EYE_COLOURS = ("amber", "blue", "brown", "gray", "grayscale", "green", "hazel", "red")


class OmniartEyes(SequentialDCGAN):
    """The pretrained 128x128 DCGAN of painted eyes of ``omniart-eye-generator==0.1`` (MIT),
    conditioned on one of eight eye colours (:data:`EYE_COLOURS`).

    A latent is ``cat(z, one_hot(colour))``, ``(108, 1, 1)``, with ``z ~ N(0, I_100)``, so a fixed
    latent fixes the colour too. The layers worth decomposing are the ReLU outputs ``main.6``
    (512 x 8 x 8), ``main.9`` (256 x 16 x 16), ``main.12`` (128 x 32 x 32) and ``main.15``
    (64 x 64 x 64); the module keeps the package's own layer names.

    Args:
        eye_colour: the colour every sampled latent asks for, by name; ``None`` samples one of
            the eight at random for each latent.
        pretrained: load the package's weights; ``False`` keeps the random initialisation.
    """

    def __init__(self, eye_colour: str | None = "brown", pretrained: bool = True):
        super().__init__()
        if eye_colour is not None and eye_colour not in EYE_COLOURS:
            raise ValueError(f"eye_colour={eye_colour!r} is not one of the generator's classes: {', '.join(EYE_COLOURS)} (or None: each latent at random).")
        self.eye_colour = eye_colour
        self.main = nn.Sequential(
            *dcgan_block(self.latent_dim + len(EYE_COLOURS), 1024, first=True),
            nn.Dropout(0.2),  # (an identity in eval mode, kept for the package's layer names)
            *dcgan_block(1024, 512), *dcgan_block(512, 256), *dcgan_block(256, 128), *dcgan_block(128, 64),
            nn.ConvTranspose2d(64, 3, 4, 2, 1, bias=False),
            nn.Tanh(),
        )
        if pretrained:
            # Saved on CUDA in the legacy format: loaded onto the CPU, tensors only.
            # Not `import omniart_eye_generator`: its __init__ loads the weights without
            # map_location, which fails on a machine without CUDA.
            path = installed_file("omniart_eye_generator", "generator_model_state.pth", "OmniartEyes", OMNIART_EYES_INSTALL)
            load_weights(self, str(path), argument="the package's generator_model_state.pth")

    def colour_one_hot(self, colours: Tensor) -> Tensor:
        """One-hot codes ``(N, 8, 1, 1)`` of class indices ``colours: (N,)``."""
        return nn.functional.one_hot(colours, len(EYE_COLOURS)).float().view(-1, len(EYE_COLOURS), 1, 1)

    def sample_latents(self, num_samples: int, generator: torch.Generator) -> Tensor:
        z = torch.randn(num_samples, self.latent_dim, 1, 1, generator=generator)
        if self.eye_colour is None:
            colours = torch.randint(len(EYE_COLOURS), (num_samples,), generator=generator)
        else:
            colours = torch.full((num_samples,), EYE_COLOURS.index(self.eye_colour))
        return torch.cat([z, self.colour_one_hot(colours)], dim=1)
