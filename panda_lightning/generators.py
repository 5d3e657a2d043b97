"""Generator adapters: the only place that knows about a particular architecture.

An adapter is an ``nn.Module`` whose ``forward(latents)`` returns images in ``[-1, 1]``, which
samples its own latents with ``sample_latents`` and, optionally, runs the generator from a
layer's output on with ``forward_from`` (edits then skip the layers before it). Any other ``nn.Module`` can be
used through :class:`GaussianLatents` in the DataModule.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources

import torch
from torch import Tensor, nn

FACE_DCGAN_INSTALL = "pip install --no-deps gan-face-generate==1.1.1"


class GaussianLatents:
    """Latents ``z ~ N(0, I)`` of a fixed shape, drawn from a given ``torch.Generator``.

    Args:
        shape: shape of one latent, without the batch dimension (``[100, 1, 1]``).
    """

    def __init__(self, shape: Sequence[int]):
        if len(shape) == 0 or any(int(d) < 1 for d in shape):
            raise ValueError(f"shape={list(shape)} must be a non-empty list of positive sizes.")
        self.shape = tuple(int(d) for d in shape)

    def __call__(self, num_samples: int, generator: torch.Generator) -> Tensor:
        return torch.randn(num_samples, *self.shape, generator=generator)

    def __repr__(self) -> str:
        return f"GaussianLatents(shape={list(self.shape)})"


class FaceDCGAN(nn.Module):
    """The pretrained 64x64 face DCGAN of ``gan-face-generate==1.1.1`` (DigiFace1M, MIT).

    Layers worth decomposing are the ReLU outputs ``main.5`` (256 x 8 x 8), ``main.8``
    (128 x 16 x 16) and ``main.11`` (64 x 32 x 32).

    Args:
        pretrained: load the bundled weights; ``False`` keeps the random initialisation.
    """

    latent_dim = 100

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
                state = torch.load(path, map_location="cpu", weights_only=True)
            generator.load_state_dict(state["netG_state_dict"])
        # Keep the wrapped model's own layer names ("main.8"), as users know them.
        self.main = generator.main
        self._latents = GaussianLatents([self.latent_dim, 1, 1])

    def sample_latents(self, num_samples: int, generator: torch.Generator) -> Tensor:
        return self._latents(num_samples, generator)

    def forward(self, latents: Tensor) -> Tensor:
        return self.main(latents)

    def forward_from(self, layer: str, activations: Tensor) -> Tensor:
        """The images from the output of ``layer`` on, without the layers before it."""
        prefix, _, index = layer.partition(".")
        if prefix != "main" or not index.isdigit() or not 0 <= int(index) < len(self.main):
            raise ValueError(f"layer={layer!r} must be one of main.0 to main.{len(self.main) - 1}.")
        return self.main[int(index) + 1 :](activations)
