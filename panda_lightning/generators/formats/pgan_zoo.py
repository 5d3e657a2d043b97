"""pytorch_GAN_zoo's PGAN checkpoints (what its ``save`` writes and its torch.hub entry downloads):
the generator's architecture, tensors (under this project's names) and fade-in, read as tensors
and plain values only."""

from __future__ import annotations

import re
from typing import Any

import torch
from torch import Tensor

from panda_lightning.loading import load_tensors


class _ZooConfig:
    """Stands in for pytorch_GAN_zoo's ``models.utils.config.BaseConfig`` (an attribute holder)
    while a checkpoint is read: its attributes are read as data, and nothing else is allowed."""


_ZooConfig.__module__, _ZooConfig.__qualname__ = "models.utils.config", "BaseConfig"

ZOO_NETWORKS = ("avgG", "netG")  # the average of the generator's weights (what it samples with), and G


def read_zoo_checkpoint(path: str, network: str = "avgG") -> tuple[dict[str, Any], dict[str, Tensor], float]:
    """``(architecture, tensors, alpha)`` of the generator ``network`` of a pytorch_GAN_zoo PGAN
    checkpoint; nothing in the file but tensors and plain values is read."""
    with torch.serialization.safe_globals([_ZooConfig]):
        content = load_tensors(path, "checkpoint")
    if not isinstance(content, dict) or "config" not in content or network not in content:
        held = list(content)[:6] if isinstance(content, dict) else type(content).__name__
        raise ValueError(f"checkpoint={path!r} is no PGAN checkpoint of pytorch_GAN_zoo (config and {network}); it holds {held}.")
    config = content["config"]
    config = dict(vars(config)) if isinstance(config, _ZooConfig) else dict(config)
    if config.get("categoryVectorDim", 0):
        raise ValueError(f"checkpoint={path!r} is a conditional PGAN (categoryVectorDim={config['categoryVectorDim']}); "
                         "only unconditional ones are read.")
    architecture = dict(
        latent_dim=config["latentVectorDim"], channels=[config["depthScale0"], *config.get("depthOtherScales", [])],
        img_channels=config.get("dimOutput", 3), leaky_relu=config.get("leakyReluLeak", 0.2),
        pixel_norm=config.get("perChannelNormalization", True), equalized=config.get("equalizedlR", True),
    )
    return architecture, zoo_names(content[network]), float(config.get("alpha", 0.0))


def zoo_names(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """pytorch_GAN_zoo's names (``formatLayer.module.weight``, ``groupScale0.0``, ``scaleLayers.i.j``,
    ``toRGBLayers.i``) as this module's."""
    renamed = {}
    for name, tensor in state.items():
        if (found := re.fullmatch(r"formatLayer\.module\.(weight|bias)", name)):
            renamed[f"input.{found.group(1)}"] = tensor
        elif (found := re.fullmatch(r"groupScale0\.0\.module\.(weight|bias)", name)):
            renamed[f"synthesis.b4.conv1.conv.{found.group(1)}"] = tensor
        elif (found := re.fullmatch(r"scaleLayers\.(\d+)\.(\d)\.module\.(weight|bias)", name)):
            scale, conv, kind = found.groups()
            renamed[f"synthesis.b{8 * 2 ** int(scale)}.conv{conv}.conv.{kind}"] = tensor
        elif (found := re.fullmatch(r"toRGBLayers\.(\d+)\.module\.(weight|bias)", name)):
            renamed[f"torgb.b{4 * 2 ** int(found.group(1))}.{found.group(2)}"] = tensor
        else:
            renamed[name] = tensor  # left for load_state to name as unexpected
    return renamed
