"""rosinality/stylegan2-pytorch checkpoints (``.pt`` with ``g_ema``) as :class:`StyleGAN2` tensors.

The two codes compute the same network with the same equalised-learning-rate parameters, so
the mapping is by name, with three reshapes: convolution weights ``(1, O, I, k, k) -> (O, I, k, k)``,
noise strengths ``(1,) -> ()``, to-RGB biases ``(1, 3, 1, 1) -> (3,)``, and noise buffers
``noises.noise_i (1, 1, R, R)`` to the ``noise_const`` of the i-th styled convolution. The
architecture is read from the tensors' shapes; the mapping network's learning-rate multiplier
is rosinality's default, 0.01 (it is not recorded in the checkpoint).
"""

from __future__ import annotations

import re
from typing import Any

from torch import Tensor

MAPPING_LR_MULTIPLIER = 0.01


def _channels_rule(channels: dict[int, int]) -> tuple[int, int]:
    """``(channel_base, channel_max)`` with ``min(channel_base // res, channel_max) == channels[res]``."""
    channel_max, highest = max(channels.values()), max(channels)
    channel_base = channels[highest] * highest
    if all(min(channel_base // res, channel_max) == count for res, count in channels.items()):
        return channel_base, channel_max
    raise ValueError(
        f"the checkpoint's channels per resolution {channels} follow no rule min(channel_base // resolution, "
        "channel_max), which StyleGAN2 builds its blocks by."
    )


def _convolution_names(size: int) -> list[str]:
    names = ["synthesis.b4.conv1"]
    res = 8
    while res <= size:
        names += [f"synthesis.b{res}.conv0", f"synthesis.b{res}.conv1"]
        res *= 2
    return names


def rosinality_to_stylegan2(state: dict[str, Tensor]) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """``(architecture, tensors)`` of rosinality's ``g_ema`` state dict: ``architecture`` as
    NVIDIA's ``Generator`` init arguments, ``tensors`` named as :class:`StyleGAN2`'s state dict
    (the constant FIR filters and ``w_avg`` aside, which rosinality does not store)."""
    required = ["style.1.weight", "input.input", "conv1.conv.weight", "to_rgb1.conv.weight"]
    missing = [key for key in required if key not in state]
    if missing:
        raise ValueError(
            f"the state dict has no {', '.join(missing)}: it is not the g_ema of a rosinality/stylegan2-pytorch "
            f"Generator (its keys start {', '.join(sorted(state)[:6])})."
        )
    mapping_layers = sorted(int(m.group(1)) for key in state if (m := re.fullmatch(r"style\.(\d+)\.weight", key)))
    num_rgb = len({m.group(1) for key in state if (m := re.match(r"to_rgbs\.(\d+)\.", key))})
    size = 4 * 2**num_rgb
    convolutions = _convolution_names(size)
    channels = {4: state["input.input"].shape[1]}
    channels.update({8 * 2**j: state[f"convs.{2 * j}.conv.weight"].shape[1] for j in range(num_rgb)})
    channel_base, channel_max = _channels_rule(channels)
    w_dim = state["style.1.weight"].shape[1]
    architecture = dict(
        z_dim=w_dim, c_dim=0, w_dim=w_dim, img_resolution=size, img_channels=state["to_rgb1.conv.weight"].shape[1],
        mapping_kwargs=dict(num_layers=len(mapping_layers), lr_multiplier=MAPPING_LR_MULTIPLIER),
        synthesis_kwargs=dict(channel_base=channel_base, channel_max=channel_max),
    )

    def layer(source: str, target: str) -> dict[str, Tensor]:
        return {
            f"{target}.weight": state[f"{source}.conv.weight"].squeeze(0),
            f"{target}.affine.weight": state[f"{source}.conv.modulation.weight"],
            f"{target}.affine.bias": state[f"{source}.conv.modulation.bias"],
            **({f"{target}.noise_strength": state[f"{source}.noise.weight"].reshape([])}
               if f"{source}.noise.weight" in state else {}),
            **({f"{target}.bias": state[f"{source}.activate.bias"]} if f"{source}.activate.bias" in state else {}),
        }

    def to_rgb(source: str, target: str) -> dict[str, Tensor]:
        return {**layer(source, target), f"{target}.bias": state[f"{source}.bias"].reshape(-1)}

    tensors = {f"mapping.fc{i}.{kind}": state[f"style.{n}.{kind}"]
               for i, n in enumerate(mapping_layers) for kind in ("weight", "bias")}
    tensors["synthesis.b4.const"] = state["input.input"].squeeze(0)
    tensors.update(layer("conv1", convolutions[0]))
    tensors.update(to_rgb("to_rgb1", "synthesis.b4.torgb"))
    for index, target in enumerate(convolutions[1:]):
        tensors.update(layer(f"convs.{index}", target))
    for j in range(num_rgb):
        tensors.update(to_rgb(f"to_rgbs.{j}", f"synthesis.b{8 * 2**j}.torgb"))
    for index, target in enumerate(convolutions):
        if f"noises.noise_{index}" in state:
            tensors[f"{target}.noise_const"] = state[f"noises.noise_{index}"].reshape(state[f"noises.noise_{index}"].shape[-2:])
    return architecture, tensors
