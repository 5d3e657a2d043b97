"""The pretrained 128x128 class-conditional eye DCGAN of ``omniart-eye-generator``."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
from torch import Tensor, nn

from panda_lightning.generators.sequential import forward_from_sequential
from panda_lightning.generators.weights import load_weights

OMNIART_EYES_INSTALL = "pip install --no-deps omniart-eye-generator==0.1"
EYE_COLOURS = ("amber", "blue", "brown", "gray", "grayscale", "green", "hazel", "red")


def _weights_file() -> Path:
    # Not `import omniart_eye_generator`: its __init__ loads the weights without map_location,
    # which fails on a machine without CUDA. Find the installed file instead.
    spec = importlib.util.find_spec("omniart_eye_generator")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            f"OmniartEyes needs the package omniart-eye-generator; install it with `{OMNIART_EYES_INSTALL}`."
        )
    return Path(next(iter(spec.submodule_search_locations))) / "generator_model_state.pth"


def _block(in_channels: int, out_channels: int, first: bool = False) -> list[nn.Module]:
    stride, padding = (1, 0) if first else (2, 1)
    return [
        nn.ConvTranspose2d(in_channels, out_channels, 4, stride, padding, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(True),
    ]


class OmniartEyes(nn.Module):
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

    latent_dim = 100

    def __init__(self, eye_colour: str | None = "brown", pretrained: bool = True):
        super().__init__()
        if eye_colour is not None and eye_colour not in EYE_COLOURS:
            raise ValueError(f"eye_colour={eye_colour!r} is not one of the generator's classes: {', '.join(EYE_COLOURS)} (or None: each latent at random).")
        self.eye_colour = eye_colour
        self.main = nn.Sequential(
            *_block(self.latent_dim + len(EYE_COLOURS), 1024, first=True),
            nn.Dropout(0.2),  # (an identity in eval mode, kept for the package's layer names)
            *_block(1024, 512), *_block(512, 256), *_block(256, 128), *_block(128, 64),
            nn.ConvTranspose2d(64, 3, 4, 2, 1, bias=False),
            nn.Tanh(),
        )
        if pretrained:
            # Saved on CUDA in the legacy format: loaded onto the CPU, tensors only.
            load_weights(self, str(_weights_file()), argument="the package's generator_model_state.pth")

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

    def forward(self, latents: Tensor) -> Tensor:
        return self.main(latents)

    def forward_from(self, layer: str, activations: Tensor) -> Tensor:
        """The images from the output of ``layer`` on, without the layers before it."""
        return forward_from_sequential(self.main, layer, activations)
