"""StyleGAN2 from the files people have: NVIDIA's network pickles and rosinality's checkpoints."""

from __future__ import annotations

import argparse
import inspect
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from panda_lightning.functional.validation import check_choice, check_float, check_index, check_int
from panda_lightning.generators.network_pickle import PersistentRecord, read_network_pickle
from panda_lightning.generators.rosinality import rosinality_to_stylegan2
from panda_lightning.generators.stylegan2_network import (
    NOISE_MODES, MappingNetwork, SynthesisBlock, SynthesisLayer, SynthesisNetwork,
)
from panda_lightning.generators.weights import load_weights

_GENERATOR_ARGUMENTS = ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels", "mapping_kwargs", "synthesis_kwargs")
# Recorded by NVIDIA's code for its own speed or training; they do not change what is computed.
_IGNORED = {"num_fp16_res", "use_fp16", "fp16_channels_last", "channels_last", "fused_modconv_default"}


def _keywords(*classes: type, skip: tuple[str, ...]) -> set[str]:
    names = {name for cls in classes for name in inspect.signature(cls.__init__).parameters}
    return names - set(skip) - {"self", "layer_kwargs", "block_kwargs"}


_MAPPING_KEYWORDS = _keywords(MappingNetwork, skip=("z_dim", "c_dim", "w_dim", "num_ws"))
_SYNTHESIS_KEYWORDS = _keywords(SynthesisNetwork, SynthesisBlock, SynthesisLayer, skip=(
    "w_dim", "img_resolution", "img_channels", "in_channels", "out_channels", "resolution", "is_last", "up",
)) | _IGNORED


def check_architecture(architecture: dict[str, Any], argument: str = "architecture") -> dict[str, Any]:
    """NVIDIA's ``Generator`` init arguments, checked: unknown names and settings this module
    does not compute are refused with what is valid."""
    if not isinstance(architecture, dict):
        raise ValueError(f"{argument} must be a dict of StyleGAN2 Generator arguments ({', '.join(_GENERATOR_ARGUMENTS)}).")
    unknown = sorted(set(architecture) - set(_GENERATOR_ARGUMENTS))
    missing = [name for name in _GENERATOR_ARGUMENTS[:5] if name not in architecture]
    if unknown or missing:
        raise ValueError(
            f"{argument} {'has unknown ' + ', '.join(unknown) if unknown else ''}"
            f"{'; ' if unknown and missing else ''}{'lacks ' + ', '.join(missing) if missing else ''}; "
            f"a StyleGAN2 Generator takes {', '.join(_GENERATOR_ARGUMENTS)}."
        )
    for group, valid in (("mapping_kwargs", _MAPPING_KEYWORDS), ("synthesis_kwargs", _SYNTHESIS_KEYWORDS)):
        unknown = sorted(set(architecture.get(group) or {}) - valid)
        if unknown:
            raise ValueError(f"{argument}.{group} has unknown {', '.join(unknown)}; valid: {', '.join(sorted(valid))}.")
    resolution = architecture["img_resolution"]
    if not isinstance(resolution, int) or resolution < 4 or resolution & (resolution - 1):
        raise ValueError(f"{argument}.img_resolution={resolution!r} must be a power of 2 from 4 on.")
    layout = (architecture.get("synthesis_kwargs") or {}).get("architecture", "skip")
    if layout not in ("skip", "orig"):
        raise ValueError(
            f"{argument}.synthesis_kwargs.architecture={layout!r} is not computed here; 'skip' (NVIDIA's default and "
            "every published StyleGAN2 generator) and 'orig' are."
        )
    return architecture


def _generator_record(content: dict[str, Any], network: str, path: str) -> PersistentRecord:
    record = content.get(network)
    if not isinstance(record, PersistentRecord):
        networks = [key for key, value in content.items() if isinstance(value, PersistentRecord)]
        raise ValueError(f"network={network!r} is not a network of pickle={path!r}; it holds {', '.join(networks)}.")
    synthesis = record.children.get("synthesis")
    if record.class_name != "Generator" or not isinstance(synthesis, PersistentRecord) or "b4" not in synthesis.children:
        held = list(synthesis.children)[:4] if isinstance(synthesis, PersistentRecord) else []
        raise ValueError(
            f"pickle={path!r}: {network} is a {record.class_name} whose synthesis network holds {held or 'nothing'}, "
            "not StyleGAN2's blocks b4, b8, ...; StyleGAN3 pickles (layers L0_...) are not read by StyleGAN2."
        )
    return record


class StyleGAN2(nn.Module):
    """StyleGAN2's generator (:mod:`stylegan2_network`), from one of:

    - ``pickle``: a network pickle of NVIDIA's stylegan2-ada-pytorch (``network-snapshot-*.pkl``,
      ``ffhq.pkl``), read without running any of the code it carries;
    - ``rosinality``: a checkpoint of rosinality/stylegan2-pytorch (``.pt`` with ``g_ema``, and
      ``latent_avg`` if it has one; without it, ``w_avg`` is the mean ``w`` of 10,000 seeded ``z``);
    - ``architecture``: NVIDIA's ``Generator`` arguments (``z_dim, c_dim, w_dim, img_resolution,
      img_channels, mapping_kwargs, synthesis_kwargs``), random weights seeded by ``seed``, or
      ``checkpoint``'s (``torch.save(generator.state_dict(), path)``).

    A latent is ``cat(z, one_hot(label))`` of ``z_dim + c_dim`` numbers, ``z ~ N(0, I)``; images
    are the synthesis network's output, nominally in ``[-1, 1]``.

    Layers keep NVIDIA's names: ``synthesis.b16.conv1`` (the features of the 16 x 16 block),
    ``synthesis.b16.conv0``, ``synthesis.b16.torgb``, ``synthesis.b16`` (``(features, image)``).
    ``layer1, layer2, ...`` name the styled convolutions in the order they run (``layer1`` is
    ``synthesis.b4.conv1``, ``layer5`` is ``synthesis.b16.conv1``): the paper's layer index, by
    which ``l = 5`` is 512 x 16 x 16 and ``l = 10`` is 128 x 128 on the 1024-px FFHQ generator.

    Args:
        truncation_psi: ``w`` moved towards ``w_avg`` by this factor (1: no truncation).
        truncation_cutoff: truncate only the first this many ``w``\\ s (``None``: all).
        noise_mode: ``"const"`` (the recorded noise: a latent gives one image), ``"random"`` or
            ``"none"``.
        label: the class every sampled latent asks for, of a conditional generator (``c_dim > 0``);
            ``None`` draws one per latent.
        network: the pickle's network to read: ``"G_ema"`` (the average of the weights, which
            NVIDIA samples with) or ``"G"``.
    """

    def __init__(
        self,
        pickle: str | None = None,
        rosinality: str | None = None,
        architecture: dict[str, Any] | None = None,
        checkpoint: str | None = None,
        network: str = "G_ema",
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
        noise_mode: str = "const",
        label: int | None = None,
        seed: int = 0,
    ):
        super().__init__()
        given = [name for name, value in (("pickle", pickle), ("rosinality", rosinality), ("architecture", architecture))
                 if value is not None]
        if len(given) != 1:
            raise ValueError(
                f"StyleGAN2 takes one of pickle, rosinality or architecture; got {', '.join(given) or 'none'}."
            )
        if checkpoint is not None and architecture is None:
            raise ValueError("checkpoint is a state dict of StyleGAN2 for a given architecture; pass architecture too.")
        tensors: dict[str, Tensor] | None = None
        if pickle is not None:
            record = _generator_record(read_network_pickle(pickle), network, pickle)
            architecture, tensors = record.init_kwargs, record.state_dict()
            source = f"pickle={pickle!r}"
        elif rosinality is not None:
            g_ema, latent_avg = _rosinality_checkpoint(rosinality)
            architecture, tensors = rosinality_to_stylegan2(g_ema)
            if latent_avg is not None:
                tensors["mapping.w_avg"] = latent_avg.reshape(-1)
            source = f"rosinality={rosinality!r}"
        architecture = check_architecture({key: value for key, value in architecture.items()})
        self.architecture = architecture
        self.z_dim, self.c_dim = architecture["z_dim"], architecture["c_dim"]
        self.truncation_psi = check_float("truncation_psi", truncation_psi, low=0.0)
        self.truncation_cutoff = truncation_cutoff
        self.noise_mode = check_choice("noise_mode", noise_mode, NOISE_MODES)
        self.label = None if label is None else check_index("label", label, self.c_dim, "classes of the generator (c_dim)")
        synthesis_kwargs = {k: v for k, v in (architecture.get("synthesis_kwargs") or {}).items() if k not in _IGNORED}
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.synthesis = SynthesisNetwork(architecture["w_dim"], architecture["img_resolution"],
                                              architecture["img_channels"], **synthesis_kwargs)
            self.mapping = MappingNetwork(self.z_dim, self.c_dim, architecture["w_dim"], self.synthesis.num_ws,
                                          **(architecture.get("mapping_kwargs") or {}))
        if truncation_cutoff is not None:
            check_int("truncation_cutoff", truncation_cutoff, low=1, high=self.synthesis.num_ws)
        if checkpoint is not None:
            load_weights(self, checkpoint, "checkpoint")
        if tensors is not None:
            self._load(tensors, source, rosinality is not None)
        self.layer_aliases = {f"layer{i + 1}": f"synthesis.{name}" for i, name in enumerate(self.synthesis.convolutions())}

    def _load(self, tensors: dict[str, Tensor], source: str, from_rosinality: bool) -> None:
        expected = self.state_dict()
        # rosinality stores neither the constant FIR filters nor (always) w_avg: keep this module's.
        optional = {name for name in expected if name.endswith("resample_filter")} if from_rosinality else set()
        if from_rosinality and "mapping.w_avg" not in tensors:
            optional.add("mapping.w_avg")
        problems = [f"missing {name}" for name in expected if name not in tensors and name not in optional]
        problems += [f"unexpected {name}" for name in tensors if name not in expected]
        problems += [f"{name}: expected {tuple(expected[name].shape)}, found {tuple(t.shape)}"
                     for name, t in tensors.items() if name in expected and t.shape != expected[name].shape]
        if problems:
            raise ValueError(f"{source} does not match the StyleGAN2 it describes: {'; '.join(problems[:8])}.")
        self.load_state_dict({**expected, **tensors})
        if "mapping.w_avg" in optional:
            with torch.no_grad():
                z = torch.randn(10_000, self.z_dim, generator=torch.Generator().manual_seed(0))
                self.mapping.w_avg.copy_(self.mapping(z, None)[:, 0].mean(dim=0))

    def sample_latents(self, num_samples: int, generator: torch.Generator) -> Tensor:
        z = torch.randn(num_samples, self.z_dim, generator=generator)
        if self.c_dim == 0:
            return z
        if self.label is None:
            labels = torch.randint(self.c_dim, (num_samples,), generator=generator)
        else:
            labels = torch.full((num_samples,), self.label)
        return torch.cat([z, nn.functional.one_hot(labels, self.c_dim).float()], dim=1)

    def mapping_ws(self, latents: Tensor) -> Tensor:
        """``ws: (N, num_ws, w_dim)`` of ``latents``, truncated as configured."""
        z, c = latents[:, : self.z_dim], latents[:, self.z_dim :]
        return self.mapping(z, c if self.c_dim else None, self.truncation_psi, self.truncation_cutoff)

    def forward(self, latents: Tensor) -> Tensor:
        return self.synthesis(self.mapping_ws(latents), self.noise_mode)


def _rosinality_checkpoint(path: str) -> tuple[dict[str, Tensor], Tensor | None]:
    """``(g_ema, latent_avg)`` of a rosinality checkpoint; ``latent_avg`` is ``None`` if it has none."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"rosinality={path!r} is not a file.")
    # Training checkpoints also hold their argparse.Namespace; nothing else beyond tensors is read.
    with torch.serialization.safe_globals([argparse.Namespace]):
        content = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(content, dict) or not isinstance(content.get("g_ema"), dict):
        keys = list(content)[:6] if isinstance(content, dict) else type(content).__name__
        raise ValueError(f"rosinality={path!r} has no 'g_ema' state dict (it holds {keys}).")
    latent_avg = content.get("latent_avg")
    return dict(content["g_ema"]), latent_avg if isinstance(latent_avg, Tensor) else None
