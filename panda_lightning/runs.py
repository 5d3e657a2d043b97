"""What a fit's ``config.yaml`` names, built without the command line: its generator, frozen at its
layer, as ``panda fit`` built it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from jsonargparse import ArgumentParser
from torch import nn

from panda_lightning.generators.frozen import FrozenGenerator
from panda_lightning.generators.latents import GaussianLatents, LatentSampler, latent_sampler


def network_and_sampler(data: Any) -> tuple[nn.Module, LatentSampler]:
    """The network and the latents' sampler that a config's ``data`` section names (its
    ``generator`` and ``latents``, as ``class_path`` and ``init_args``)."""
    parser = ArgumentParser()
    parser.add_argument("--generator", type=nn.Module)
    parser.add_argument("--latents", type=GaussianLatents | None)
    built = parser.instantiate(parser.parse_object({"generator": data["generator"], "latents": data.get("latents")}))
    return built.generator.eval(), latent_sampler(built.generator, built.latents)


def generator_from_config(path: str | os.PathLike) -> FrozenGenerator:
    """The generator of the ``config.yaml`` that ``panda fit`` wrote beside a run's logs, frozen at its layer."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"config={str(path)!r} is not a file; a fit writes RUN/config.yaml.")
    config = yaml.safe_load(Path(path).read_text()) or {}
    data = config.get("data")
    if not isinstance(data, dict) or "generator" not in data:
        raise ValueError(f"config={str(path)!r} names no data.generator: it is not a config that panda fit wrote or takes.")
    network, sampler = network_and_sampler(data)
    return FrozenGenerator(network, data.get("layer", "main.8"), sampler, data.get("seed", 0))
