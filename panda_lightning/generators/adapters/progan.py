"""ProGAN (Karras et al., ICLR 2018), from the checkpoints of facebookresearch/pytorch_GAN_zoo's PGAN.

The generator: the latent, normalised (pixel norm), through an equalised dense layer to a
``C_0 x 4 x 4`` map; at each scale after the first, a nearest-neighbour up-sampling; at every
scale 3 x 3 equalised convolutions, each followed by a leaky ReLU and a pixel norm (one at 4 x 4,
two above); a 1 x 1 convolution to RGB, without an activation. An equalised layer's weights are
``N(0, 1)`` and its output (bias included) is scaled by He's constant ``sqrt(2 / fan_in)`` at run
time. While a scale is faded in, the image is ``alpha`` times the previous scale's RGB,
up-sampled, plus ``1 - alpha`` times the new one's.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from panda_lightning.functional.validation import check_float, check_int
from panda_lightning.generators.formats.pgan_zoo import ZOO_NETWORKS, read_zoo_checkpoint
from panda_lightning.generators.formats.weights import load_state
from panda_lightning.generators.networks.progan import Block, ConvLayer, EqualizedConv2d, InputLayer


# ProGAN at 1024 px as its paper's CelebA-HQ network: 512 channels up to 64 px, then halved at each scale
PGAN_CHANNELS = [512, 512, 512, 512, 256, 128, 64, 32, 16]


class ProGAN(nn.Module):
    """ProGAN's generator (module docstring), from one of:

    - ``checkpoint``: a checkpoint of pytorch_GAN_zoo's PGAN (what its ``save`` writes and
      ``torch.hub.load('facebookresearch/pytorch_GAN_zoo:hub', 'PGAN', pretrained=True, ...)``
      downloads: ``config``, ``netG``, ``netD``, ``avgG``), read as tensors and plain values
      only; it replaces an ``architecture`` given beside it (a config's random example);
    - ``architecture``: ``latent_dim``, ``channels`` (one per scale from 4 x 4 up: ``[512, 512,
      512, 512, 256, 128, 64, 32, 16]`` at 1024 px), and optionally ``img_channels`` (3),
      ``leaky_relu`` (0.2), ``pixel_norm`` (True), ``equalized`` (True); random weights seeded
      by ``seed``.

    Latents are ``z ~ N(0, I)`` of ``latent_dim`` numbers. Layers: ``synthesis.b4.conv1``,
    ``synthesis.b8.conv0``, ``synthesis.b8.conv1``, ... (each after its leaky ReLU and pixel
    norm), and ``input`` (the 4 x 4 map of the latent); ``layer1, layer2, ...`` count the
    convolutions in the order they run, as for StyleGAN2 (``layer5`` is ``synthesis.b16.conv1``).

    Args:
        network: of a checkpoint: ``"avgG"`` (the average of the weights, which PGAN samples
            with) or ``"netG"``.
        alpha: the fade-in of the last scale; ``None``: the checkpoint's (0 once a scale is fully in).
    """

    def __init__(self, checkpoint: str | None = None, architecture: dict[str, Any] | None = None, network: str = "avgG",
                 alpha: float | None = None, seed: int = 0):
        super().__init__()
        if checkpoint is None and architecture is None:
            raise ValueError("ProGAN needs checkpoint (a pytorch_GAN_zoo PGAN checkpoint) or architecture (random weights).")
        tensors = None
        if checkpoint is not None:
            if network not in ZOO_NETWORKS:
                raise ValueError(f"network={network!r} is not one of a PGAN checkpoint's generators: {', '.join(ZOO_NETWORKS)}.")
            architecture, tensors, recorded_alpha = read_zoo_checkpoint(checkpoint, network)
            alpha = recorded_alpha if alpha is None else alpha
        self.architecture = architecture = _checked(architecture)
        self.alpha = check_float("alpha", 0.0 if alpha is None else alpha, low=0.0, high=1.0, why="the fade-in of the last scale")
        self.latent_dim, channels = architecture["latent_dim"], architecture["channels"]
        slope, normalize, equalized = architecture["leaky_relu"], architecture["pixel_norm"], architecture["equalized"]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.input = InputLayer(self.latent_dim, channels[0], slope, normalize, equalized)
            blocks, rgb = {}, {}
            for level, (before, depth) in enumerate(zip([channels[0], *channels], channels)):
                size = 4 * 2**level
                if level:  # up-sampled, then a second convolution
                    layers = {"conv0": ConvLayer(before, depth, True, slope, normalize, equalized),
                              "conv1": ConvLayer(depth, depth, False, slope, normalize, equalized)}
                else:
                    layers = {"conv1": ConvLayer(before, depth, False, slope, normalize, equalized)}
                blocks[f"b{size}"] = Block(layers)
                rgb[f"b{size}"] = EqualizedConv2d(depth, architecture["img_channels"], 1, equalized)
            self.synthesis = nn.ModuleDict(blocks)
            self.torgb = nn.ModuleDict(rgb)
        if tensors is not None:
            load_state(self, tensors, f"checkpoint={checkpoint!r} ({network})")
        self.layer_aliases = {f"layer{i + 1}": name for i, name in enumerate(self.convolutions())}

    def convolutions(self) -> list[str]:
        """The convolutions' layer names in the order they run."""
        return [f"synthesis.{block}.{conv}" for block, layers in self.synthesis.items() for conv in layers.keys()]

    def sample_latents(self, num_samples: int, generator: torch.Generator) -> Tensor:
        return torch.randn(num_samples, self.latent_dim, generator=generator)

    def forward(self, latents: Tensor) -> Tensor:
        x, previous = self.input(latents), None
        blocks = list(self.synthesis.values())
        for index, block in enumerate(blocks):
            x = block(x)
            if index == len(blocks) - 2:
                previous = x
        names = list(self.torgb.keys())
        image = self.torgb[names[-1]](x)
        if self.alpha > 0 and previous is not None:
            faded = F.interpolate(self.torgb[names[-2]](previous), scale_factor=2, mode="nearest")
            image = self.alpha * faded + (1 - self.alpha) * image
        return image


def _checked(architecture: Any) -> dict[str, Any]:
    if not isinstance(architecture, dict) or "latent_dim" not in architecture or "channels" not in architecture:
        raise ValueError("architecture must be a dict with latent_dim and channels (one per scale from 4 x 4 up).")
    valid = {"latent_dim", "channels", "img_channels", "leaky_relu", "pixel_norm", "equalized"}
    unknown = sorted(set(architecture) - valid)
    if unknown:
        raise ValueError(f"architecture has unknown {', '.join(unknown)}; valid: {', '.join(sorted(valid))}.")
    channels = list(architecture["channels"])
    if not channels:
        raise ValueError("architecture.channels is empty: give one number of channels per scale from 4 x 4 up.")
    for i, depth in enumerate(channels):
        check_int(f"architecture.channels[{i}]", depth, low=1)
    latent_dim = check_int("architecture.latent_dim", architecture["latent_dim"], low=1)
    return {"img_channels": 3, "leaky_relu": 0.2, "pixel_norm": True, "equalized": True, **architecture,
            "latent_dim": latent_dim, "channels": channels}
