"""StyleGAN2 and StyleGAN3 from the files people have: NVIDIA's network pickles (read without
running them), rosinality's checkpoints (StyleGAN2), or NVIDIA's architecture arguments."""

from __future__ import annotations

import argparse
import inspect
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from panda_lightning.functional.validation import check_choice, check_float, check_index, check_int
from panda_lightning.generators.networks import stylegan2 as sg2
from panda_lightning.generators.networks import stylegan3 as sg3
from panda_lightning.generators.formats.nvidia_pickle import PersistentRecord, TFNetworkRecord, read_network_pickle
from panda_lightning.generators.formats.rosinality import rosinality_to_stylegan2
from panda_lightning.generators.formats.tf_stylegan2 import tf_architecture, tf_tensors
from panda_lightning.generators.formats.weights import load_state, load_weights
from panda_lightning.loading import load_tensors

_GENERATOR = ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels")
# Recorded by NVIDIA's code for its speed or its training; they do not change what is computed.
_IGNORED = {"num_fp16_res", "use_fp16", "fp16_channels_last", "channels_last", "fused_modconv_default",
            "magnitude_ema_beta"}


# The published full-size shapes, for trying a fit's cost before a network is at hand.
CONFIG_F = dict(  # NVIDIA's StyleGAN2 config-f at 1024 px, as its FFHQ network
    z_dim=512, c_dim=0, w_dim=512, img_resolution=1024, img_channels=3,
    mapping_kwargs={"num_layers": 8}, synthesis_kwargs={"channel_base": 32768, "channel_max": 512},
)
# StyleGAN3 config-R at 1024 px, as NVIDIA's FFHQ network: twice config-T's channels, 1x1 convolutions, radial filters
CONFIG_R = dict(z_dim=512, c_dim=0, w_dim=512, img_resolution=1024, img_channels=3, mapping_kwargs={"num_layers": 2},
                channel_base=65536, channel_max=1024, conv_kernel=1, use_radial_filters=True)


def _keywords(*classes: type, skip: tuple[str, ...] = ()) -> set[str]:
    names = {name for cls in classes for name in inspect.signature(cls.__init__).parameters}
    return names - set(skip) - {"self", "layer_kwargs", "block_kwargs"} | _IGNORED


_MAPPING = _keywords(sg2.MappingNetwork, skip=("z_dim", "c_dim", "w_dim", "num_ws")) - _IGNORED
_STYLEGAN2_SYNTHESIS = _keywords(sg2.SynthesisNetwork, sg2.SynthesisBlock, sg2.SynthesisLayer, skip=(
    "w_dim", "img_resolution", "img_channels", "in_channels", "out_channels", "resolution", "is_last", "up",
))
_STYLEGAN3_SYNTHESIS = _keywords(sg3.SynthesisNetwork, sg3.SynthesisLayer, skip=(
    "w_dim", "img_resolution", "img_channels", "is_torgb", "is_critically_sampled", "in_channels", "out_channels",
    "in_size", "out_size", "in_sampling_rate", "out_sampling_rate", "in_cutoff", "out_cutoff", "in_half_width",
    "out_half_width",
))


def _unknown(names: Any, valid: set[str], where: str) -> None:
    unknown = sorted(set(names) - valid)
    if unknown:
        raise ValueError(f"{where} has unknown {', '.join(unknown)}; valid: {', '.join(sorted(valid))}.")


class _StyleGAN(nn.Module):
    """What StyleGAN2 and StyleGAN3 share: NVIDIA's ``Generator`` arguments and tensor names,
    the mapping network, latents ``cat(z, one_hot(label))``, truncation and loading."""

    kind: str
    synthesis_kwargs_grouped: bool  # StyleGAN2's Generator takes synthesis_kwargs; StyleGAN3's takes them flat
    synthesis_keywords: set[str]
    synthesis_child: str  # a sub-module only this kind's synthesis network has
    mapping_layers: int  # NVIDIA's default depth of the mapping network

    def __init__(self, pickle: str | None, architecture: dict[str, Any] | None, checkpoint: str | None, network: str,
                 truncation_psi: float, truncation_cutoff: int | None, label: int | None, seed: int,
                 tensors: dict[str, Tensor] | None = None, source: str = "", optional: set[str] = frozenset()):
        super().__init__()
        if pickle is not None:
            architecture, tensors, source, optional = self._from_pickle(read_network_pickle(pickle), network, pickle)
        self.architecture = self.check_architecture(architecture)
        self.z_dim, self.c_dim = architecture["z_dim"], architecture["c_dim"]
        self.truncation_psi = check_float("truncation_psi", truncation_psi, low=0.0)
        self.label = None if label is None else check_index("label", label, self.c_dim, "classes of the generator (c_dim)")
        mapping_kwargs = {"num_layers": self.mapping_layers, **(architecture.get("mapping_kwargs") or {})}
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.synthesis = self._build_synthesis(architecture)
            self.mapping = sg2.MappingNetwork(self.z_dim, self.c_dim, architecture["w_dim"], self.synthesis.num_ws,
                                              **mapping_kwargs)
        self.truncation_cutoff = None if truncation_cutoff is None else check_int(
            "truncation_cutoff", truncation_cutoff, low=1, high=self.synthesis.num_ws, why="the number of ws")
        if checkpoint is not None:
            load_weights(self, checkpoint, "checkpoint")
        if tensors is not None:
            load_state(self, tensors, source, optional)

    @classmethod
    def check_architecture(cls, architecture: Any, argument: str = "architecture") -> dict[str, Any]:
        """NVIDIA's ``Generator`` init arguments, checked: unknown names, and settings not computed
        here, are refused with what is valid."""
        grouping = ("synthesis_kwargs",) if cls.synthesis_kwargs_grouped else tuple(sorted(cls.synthesis_keywords))
        valid = {*_GENERATOR, "mapping_kwargs", *grouping}
        if not isinstance(architecture, dict):
            raise ValueError(f"{argument} must be a dict of {cls.kind} Generator arguments ({', '.join(_GENERATOR)}, ...).")
        missing = [name for name in _GENERATOR if name not in architecture]
        if missing:
            raise ValueError(f"{argument} lacks {', '.join(missing)}; a {cls.kind} Generator takes {', '.join(_GENERATOR)}.")
        _unknown(architecture, valid, argument)
        _unknown(architecture.get("mapping_kwargs") or {}, _MAPPING, f"{argument}.mapping_kwargs")
        if cls.synthesis_kwargs_grouped:
            _unknown(architecture.get("synthesis_kwargs") or {}, cls.synthesis_keywords, f"{argument}.synthesis_kwargs")
        resolution = architecture["img_resolution"]
        if not isinstance(resolution, int) or resolution < 4 or resolution & (resolution - 1):
            raise ValueError(f"{argument}.img_resolution={resolution!r} must be a power of 2 from 4 on.")
        return architecture

    @classmethod
    def recorded_architecture(cls, init_kwargs: dict[str, Any]) -> dict[str, Any]:
        """The ``architecture`` of a pickle's recorded init arguments."""
        return init_kwargs

    def _from_pickle(self, content: dict[str, Any], network: str, path: str) -> tuple[dict[str, Any], dict[str, Tensor], str, set[str]]:
        """``(architecture, tensors, source, optional)`` of ``network`` in a read pickle."""
        record = self._generator_record(content, network, path)
        return self.recorded_architecture(record.init_kwargs), record.state_dict(), f"pickle={path!r}", set()

    def _synthesis_kwargs(self, architecture: dict[str, Any]) -> dict[str, Any]:
        given = architecture.get("synthesis_kwargs") or {} if self.synthesis_kwargs_grouped else {
            key: value for key, value in architecture.items() if key in self.synthesis_keywords
        }
        return {key: value for key, value in given.items() if key not in _IGNORED}

    def _build_synthesis(self, architecture: dict[str, Any]) -> nn.Module:
        raise NotImplementedError

    @classmethod
    def _generator_record(cls, content: dict[str, Any], network: str, path: str) -> PersistentRecord:
        record = content.get(network)
        if isinstance(record, TFNetworkRecord):
            raise ValueError(f"pickle={path!r} is a TensorFlow-era pickle, whose networks are StyleGAN2's or older; "
                             f"{cls.kind} reads NVIDIA's PyTorch pickles only.")
        if not isinstance(record, PersistentRecord):
            networks = [key for key, value in content.items() if isinstance(value, PersistentRecord)]
            raise ValueError(f"network={network!r} is not a network of pickle={path!r}; it holds {', '.join(networks)}.")
        synthesis = record.children.get("synthesis")
        held = list(synthesis.children) if isinstance(synthesis, PersistentRecord) else []
        if record.class_name != "Generator" or cls.synthesis_child not in held:
            other = next((other for other in _StyleGAN.__subclasses__() if other.synthesis_child in held), None)
            hint = f"; read it with {other.__name__}" if other is not None else ""
            raise ValueError(
                f"pickle={path!r}: {network} is a {record.class_name} whose synthesis network holds "
                f"{', '.join(held[:4]) or 'nothing'}, not {cls.kind}'s{hint}."
            )
        return record

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
        """``ws: (N, num_ws, w_dim)`` of ``latents``, truncated as configured; latents that are
        ``ws`` already (``(N, num_ws, w_dim)``, as an inversion in W+ finds them) as they are."""
        if latents.ndim == 3:
            return latents
        z, c = latents[:, : self.z_dim], latents[:, self.z_dim :]
        return self.mapping(z, c if self.c_dim else None, self.truncation_psi, self.truncation_cutoff)

    def forward(self, latents: Tensor) -> Tensor:
        return self.synthesis(self.mapping_ws(latents))


class StyleGAN2(_StyleGAN):
    """StyleGAN2's generator (:mod:`stylegan2_network`), from one of:

    - ``pickle``: a network pickle of NVIDIA's: stylegan2-ada-pytorch's (``network-snapshot-*.pkl``,
      ``ffhq.pkl``), the stylegan3 repository's (``stylegan2-ffhq-1024x1024.pkl``) or a
      TensorFlow-era one of stylegan2 or stylegan2-ada (``stylegan2-ffhq-config-f.pkl``: its
      ``Gs``), read without running any of the code it carries (:mod:`tf_stylegan2` converts
      the TensorFlow variables);
    - ``rosinality``: a checkpoint of rosinality/stylegan2-pytorch (``.pt`` with ``g_ema``, and
      ``latent_avg`` if it has one; without it, ``w_avg`` is the mean ``w`` of 10,000 seeded
      ``z``); given as ``pickle``, such a file (a ``torch.save`` archive) is recognised too;
    - ``architecture``: NVIDIA's ``Generator`` arguments (``z_dim, c_dim, w_dim, img_resolution,
      img_channels, mapping_kwargs, synthesis_kwargs``), random weights seeded by ``seed``, or
      ``checkpoint``'s (``torch.save(generator.state_dict(), path)``). A ``pickle`` or
      ``rosinality`` file given beside it replaces it (the file records its own).

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

    kind, synthesis_kwargs_grouped, synthesis_child, mapping_layers = "StyleGAN2", True, "b4", 8
    synthesis_keywords = _STYLEGAN2_SYNTHESIS

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
        if pickle is not None and zipfile.is_zipfile(pickle):
            # A torch.save archive, not a pickle: rosinality's format (NVIDIA's are plain pickles).
            pickle, rosinality = None, pickle
        architecture = _architecture_or_file("StyleGAN2", {"pickle": pickle, "rosinality": rosinality}, architecture, checkpoint)
        self.noise_mode = check_choice("noise_mode", noise_mode, sg2.NOISE_MODES)
        tensors, optional, latent_avg, source = None, set(), None, f"rosinality={rosinality!r}"
        if rosinality is not None:
            g_ema, latent_avg = _rosinality_checkpoint(rosinality)
            architecture, tensors = rosinality_to_stylegan2(g_ema)
            if latent_avg is not None:
                tensors["mapping.w_avg"] = latent_avg.reshape(-1)
            # rosinality stores neither the constant FIR filters nor (always) w_avg: this module's stay.
            optional = {"mapping.w_avg"} | {f"{name}.resample_filter" for name in _resampling_modules(architecture)}
        super().__init__(pickle, architecture, checkpoint, network, truncation_psi, truncation_cutoff, label, seed,
                         tensors, source, optional)
        if rosinality is not None and latent_avg is None:
            with torch.no_grad():
                z = torch.randn(10_000, self.z_dim, generator=torch.Generator().manual_seed(0))
                self.mapping.w_avg.copy_(self.mapping(z, None)[:, 0].mean(dim=0))
        self.layer_aliases = {f"layer{i + 1}": f"synthesis.{name}" for i, name in enumerate(self.synthesis.convolutions())}

    def _from_pickle(self, content: dict[str, Any], network: str, path: str) -> tuple[dict[str, Any], dict[str, Tensor], str, set[str]]:
        record, source = content.get(network), f"pickle={path!r}"
        if not isinstance(record, TFNetworkRecord):
            return super()._from_pickle(content, network, path)
        architecture = self.check_architecture(tf_architecture(record, source))
        try:
            tensors = tf_tensors(record, architecture, source)
        except KeyError as missing:
            raise ValueError(f"{source}: its {network} has no variable {missing}; it is no StyleGAN2 generator.") from None
        # TensorFlow keeps the FIR filters in its code, not among the variables: this module's stay.
        return architecture, tensors, source, {f"{name}.resample_filter" for name in _resampling_modules(architecture)}

    @classmethod
    def recorded_architecture(cls, init_kwargs: dict[str, Any]) -> dict[str, Any]:
        """stylegan2-ada-pytorch records ``synthesis_kwargs``; the stylegan3 repository's StyleGAN2
        (``training.networks_stylegan2``, the published ``stylegan2-*.pkl`` files) records the
        synthesis arguments among the Generator's, and its blocks clamp at 256 by default."""
        flat = {key: value for key, value in init_kwargs.items() if key in cls.synthesis_keywords}
        if not flat or "synthesis_kwargs" in init_kwargs:
            return init_kwargs
        rest = {key: value for key, value in init_kwargs.items() if key not in flat}
        return {**rest, "synthesis_kwargs": {"conv_clamp": 256, **flat}}

    @classmethod
    def check_architecture(cls, architecture: Any, argument: str = "architecture") -> dict[str, Any]:
        architecture = super().check_architecture(architecture, argument)
        layout = (architecture.get("synthesis_kwargs") or {}).get("architecture", "skip")
        if layout not in ("skip", "orig"):
            raise ValueError(
                f"{argument}.synthesis_kwargs.architecture={layout!r} is not computed here; 'skip' (NVIDIA's default "
                "and every published StyleGAN2 generator) and 'orig' are."
            )
        return architecture

    def _build_synthesis(self, architecture: dict[str, Any]) -> nn.Module:
        return sg2.SynthesisNetwork(architecture["w_dim"], architecture["img_resolution"],
                                    architecture["img_channels"], **self._synthesis_kwargs(architecture))

    def forward(self, latents: Tensor) -> Tensor:
        return self.synthesis(self.mapping_ws(latents), self.noise_mode)


class StyleGAN3(_StyleGAN):
    """StyleGAN3's generator (:mod:`stylegan3_network`), config-T or config-R, from one of:

    - ``pickle``: a network pickle of NVIDIA's stylegan3 (``stylegan3-t-ffhq-1024x1024.pkl``,
      ``network-snapshot-*.pkl``), read without running any of the code it carries;
    - ``architecture``: NVIDIA's ``Generator`` arguments (``z_dim, c_dim, w_dim, img_resolution,
      img_channels, mapping_kwargs`` and the synthesis network's: ``channel_base``,
      ``num_layers``, ``conv_kernel``, ``use_radial_filters``, ...), random weights seeded by
      ``seed``, or ``checkpoint``'s.

    Latents and images as :class:`StyleGAN2`'s. Layers keep NVIDIA's names:
    ``synthesis.input`` (the Fourier features), then ``synthesis.L{i}_{size}_{channels}``
    (``size`` includes a margin of 10 pixels on each side until the last layers); ``layer{i}``
    names ``L{i}`` by its index alone.

    Args:
        truncation_psi, truncation_cutoff, label, network: as :class:`StyleGAN2`'s.
    """

    kind, synthesis_kwargs_grouped, synthesis_child, mapping_layers = "StyleGAN3", False, "input", 2
    synthesis_keywords = _STYLEGAN3_SYNTHESIS

    def __init__(
        self,
        pickle: str | None = None,
        architecture: dict[str, Any] | None = None,
        checkpoint: str | None = None,
        network: str = "G_ema",
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
        label: int | None = None,
        seed: int = 0,
    ):
        architecture = _architecture_or_file("StyleGAN3", {"pickle": pickle}, architecture, checkpoint)
        super().__init__(pickle, architecture, checkpoint, network, truncation_psi, truncation_cutoff, label, seed)
        self.layer_aliases = {f"layer{name[1:].split('_')[0]}": f"synthesis.{name}" for name in self.synthesis.layer_names}

    def _build_synthesis(self, architecture: dict[str, Any]) -> nn.Module:
        return sg3.SynthesisNetwork(architecture["w_dim"], architecture["img_resolution"],
                                    architecture["img_channels"], **self._synthesis_kwargs(architecture))


def _architecture_or_file(kind: str, files: dict[str, str | None], architecture: dict[str, Any] | None,
                          checkpoint: str | None) -> dict[str, Any] | None:
    """The architecture to build, ``None`` when a file gives it: a file records its own, so it
    replaces an architecture given beside it (a config's random example, say)."""
    given = [name for name, path in files.items() if path is not None]
    if len(given) > 1:
        raise ValueError(f"{kind} reads one network file; got {' and '.join(f'{name}={files[name]!r}' for name in given)}.")
    if given and checkpoint is not None:
        raise ValueError(f"checkpoint={checkpoint!r} holds weights for architecture=; {given[0]}= brings its own. Give one of them.")
    if not given and architecture is None:
        raise ValueError(f"{kind} needs one of {', '.join(files)} (a network file) or architecture (random weights).")
    return None if given else architecture


def _resampling_modules(architecture: dict[str, Any]) -> list[str]:
    """The modules of a StyleGAN2 of ``architecture`` that hold a ``resample_filter``."""
    sides = [2**i for i in range(2, architecture["img_resolution"].bit_length())]
    return [f"synthesis.b{side}{suffix}" for side in sides
            for suffix in ("", ".conv1") + ((".conv0",) if side > 4 else ())]


def _rosinality_checkpoint(path: str) -> tuple[dict[str, Tensor], Tensor | None]:
    """``(g_ema, latent_avg)`` of a rosinality checkpoint; ``latent_avg`` is ``None`` if it has none."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"rosinality={path!r} is not a file.")
    # Training checkpoints also hold their argparse.Namespace; nothing else beyond tensors is read.
    with torch.serialization.safe_globals([argparse.Namespace]):
        content = load_tensors(path, "rosinality")
    if not isinstance(content, dict) or not isinstance(content.get("g_ema"), dict):
        keys = list(content)[:6] if isinstance(content, dict) else type(content).__name__
        raise ValueError(f"rosinality={path!r} has no 'g_ema' state dict (it holds {keys}).")
    latent_avg = content.get("latent_avg")
    return dict(content["g_ema"]), latent_avg if isinstance(latent_avg, Tensor) else None
