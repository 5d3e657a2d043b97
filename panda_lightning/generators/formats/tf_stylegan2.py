"""TensorFlow-era StyleGAN2 networks (NVIDIA's stylegan2 and stylegan2-ada TensorFlow pickles)
as :class:`StyleGAN2` architecture and tensors, from their recorded arguments and variables.

The TensorFlow code computes the same network; its variables differ in layout only: dense and
style weights are ``[in, out]``, convolution kernels ``[k, k, in, out]`` (the up-sampling
convolution's also flipped in both spatial axes), style biases are stored minus one, the
constant input is ``[1, C, 4, 4]``, noise inputs are ``synthesis/noiseK`` ``[1, 1, R, R]``
numbered in the order the convolutions run, and ``dlatent_avg`` is the mapping's ``w_avg``.
``fmap_base`` counts half the channels of ``channel_base``; the mapping's learning-rate
multiplier is not recorded and is NVIDIA's default, 0.01.
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np
import torch
from torch import Tensor

from panda_lightning.generators.formats.nvidia_pickle import TFNetworkRecord

# The build arguments of a TensorFlow StyleGAN2 generator, and the architecture argument each
# becomes (None: it does not change what the generator computes here).
_ARGUMENTS: dict[str, tuple[str, str] | None] = {
    "latent_size": ("", "z_dim"), "label_size": ("", "c_dim"), "dlatent_size": ("", "w_dim"),
    "resolution": ("", "img_resolution"), "num_channels": ("", "img_channels"),
    "fmap_max": ("synthesis_kwargs", "channel_max"), "conv_clamp": ("synthesis_kwargs", "conv_clamp"),
    "architecture": ("synthesis_kwargs", "architecture"), "resample_kernel": ("synthesis_kwargs", "resample_filter"),
    "use_noise": ("synthesis_kwargs", "use_noise"), "nonlinearity": ("synthesis_kwargs", "activation"),
    "mapping_layers": ("mapping_kwargs", "num_layers"), "label_fmaps": ("mapping_kwargs", "embed_features"),
    "mapping_fmaps": ("mapping_kwargs", "layer_features"), "mapping_nonlinearity": ("mapping_kwargs", "activation"),
    "mapping_lrmul": ("mapping_kwargs", "lr_multiplier"),
    "fmap_base": None, "fmap_decay": None, "num_fp16_res": None, "w_avg_beta": None, "dlatent_avg_beta": None,
    "truncation_psi": None, "truncation_cutoff": None, "style_mixing_prob": None, "structure": None,
    "conditioning": None, "fused_modconv": None, "randomize_noise": None, "is_template_graph": None,
}
_DEFAULTS = dict(z_dim=512, c_dim=0, w_dim=512, img_resolution=1024, img_channels=3)


def tf_architecture(network: TFNetworkRecord, source: str) -> dict[str, Any]:
    """StyleGAN2's ``architecture`` from a TensorFlow generator's ``static_kwargs``."""
    recorded = network.static_kwargs
    unknown = sorted(set(recorded) - set(_ARGUMENTS))
    if unknown:
        raise ValueError(f"{source}: its generator has build arguments not read here: {', '.join(unknown)}.")
    decay = recorded.get("fmap_decay", 1.0)
    if decay != 1.0:
        raise ValueError(f"{source}: fmap_decay={decay} halves the channels at another rate than StyleGAN2's blocks; only 1.0 is read.")
    architecture: dict[str, Any] = dict(_DEFAULTS, mapping_kwargs={}, synthesis_kwargs={
        "channel_base": 2 * recorded.get("fmap_base", 16384), "channel_max": 512, "conv_clamp": None,
    })
    for name, value in recorded.items():
        target = _ARGUMENTS[name]
        if target is None or value is None:
            continue
        group, key = target
        (architecture[group] if group else architecture)[key] = list(value) if isinstance(value, (list, tuple)) else value
    return architecture


def _conv(kernel: np.ndarray, flip: bool = False) -> np.ndarray:
    """``[k, k, in, out]`` (flipped in both spatial axes if ``flip``) as ``[out, in, k, k]``."""
    return (kernel[::-1, ::-1] if flip else kernel).transpose(3, 2, 0, 1)


def _layer(variables: dict[str, np.ndarray], scope: str, target: str, flip: bool = False, noise: str | None = None) -> dict:
    """The tensors of one styled convolution or RGB layer."""
    tensors = {
        f"{target}.weight": _conv(variables[f"{scope}/weight"], flip),
        f"{target}.bias": variables[f"{scope}/bias"],
        f"{target}.affine.weight": variables[f"{scope}/mod_weight"].T,
        f"{target}.affine.bias": variables[f"{scope}/mod_bias"] + 1,
    }
    if noise is not None:
        tensors[f"{target}.noise_strength"] = variables[f"{scope}/noise_strength"]
        tensors[f"{target}.noise_const"] = variables[f"synthesis/{noise}"][0, 0]
    return tensors


def tf_tensors(network: TFNetworkRecord, architecture: dict[str, Any], source: str) -> dict[str, Tensor]:
    """StyleGAN2's tensors, by its names, from a TensorFlow generator's variables."""
    variables = network.all_variables()
    layout = architecture["synthesis_kwargs"].get("architecture", "skip")
    if layout != "skip" or any(re.fullmatch(r"ToRGB_lod\d+/.*", name) for name in variables):
        raise ValueError(f"{source}: its generator's architecture is {layout!r}; TensorFlow pickles are read for 'skip' (configs E and F).")
    use_noise = architecture["synthesis_kwargs"].get("use_noise", True)
    tensors: dict[str, np.ndarray] = {"mapping.w_avg": variables["dlatent_avg"]}
    for name, value in variables.items():
        dense = re.fullmatch(r"mapping/(Dense\d+|LabelEmbed)/(weight|bias)", name)
        if dense:
            layer = "embed" if dense.group(1) == "LabelEmbed" else f"fc{dense.group(1)[5:]}"
            tensors[f"mapping.{layer}.{dense.group(2)}"] = value.T if dense.group(2) == "weight" else value
    tensors["synthesis.b4.const"] = variables["synthesis/4x4/Const/const"][0]
    tensors.update(_layer(variables, "synthesis/4x4/Conv", "synthesis.b4.conv1", noise="noise0" if use_noise else None))
    for level in range(2, int(math.log2(architecture["img_resolution"])) + 1):
        r = 2**level
        scope, block = f"synthesis/{r}x{r}", f"synthesis.b{r}"
        if level > 2:  # the convolutions run in order: noise 2 * level - 5 and - 4
            tensors.update(_layer(variables, f"{scope}/Conv0_up", f"{block}.conv0", flip=True,
                                  noise=f"noise{2 * level - 5}" if use_noise else None))
            tensors.update(_layer(variables, f"{scope}/Conv1", f"{block}.conv1", noise=f"noise{2 * level - 4}" if use_noise else None))
        tensors.update(_layer(variables, f"{scope}/ToRGB", f"{block}.torgb"))
    # (a copy: contiguous, 0-d kept, as np.ascontiguousarray would not)
    return {name: torch.from_numpy(np.array(value, dtype=np.float32)) for name, value in tensors.items()}
