"""Readers of other people's files, read and tested without the networks they fill; and the rooms of
``generators/`` kept apart: a reader imports no network, a network no reader."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch

from panda_lightning.generators.formats.nvidia_pickle import TFNetworkRecord, read_network_pickle
from panda_lightning.generators.formats.pgan_zoo import read_zoo_checkpoint
from panda_lightning.generators.formats.tf_stylegan2 import tf_architecture, tf_tensors

from conftest import ROOT

GENERATORS = ROOT / "panda_lightning" / "generators"


def imported(path: Path) -> set[str]:
    """The modules a file imports."""
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names |= {node.module, *(f"{node.module}.{alias.name}" for alias in node.names)}
        elif isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
    return names


@pytest.mark.parametrize("room, kept_from", [("formats", ("networks", "adapters")), ("networks", ("formats", "adapters"))])
def test_each_room_of_generators_keeps_to_its_concern(room, kept_from):
    files = sorted((GENERATORS / room).glob("*.py"))
    assert len(files) >= 4
    for path in files:
        reaching = sorted(name for name in imported(path) if any(f"panda_lightning.generators.{other}" in name for other in kept_from))
        assert not reaching, f"{path.name} imports {reaching}"


def test_a_pgan_checkpoint_reads_to_an_architecture_and_tensors_named_as_progans():
    architecture, tensors, alpha = read_zoo_checkpoint(str(ROOT / "tests" / "data" / "progan_zoo.pth"))
    assert architecture == dict(latent_dim=24, channels=[32, 32, 16], img_channels=3, leaky_relu=0.2, pixel_norm=True, equalized=True)
    assert alpha == 0.0
    depths = architecture["channels"]
    expected = {"input.weight": (16 * depths[0], 24), "input.bias": (16 * depths[0],)}
    for level, (before, depth) in enumerate(zip([depths[0], *depths], depths)):
        size = 4 * 2**level
        convolutions = [("conv1", depth, before)] if level == 0 else [("conv0", depth, before), ("conv1", depth, depth)]
        for conv, out, into in convolutions:
            expected |= {f"synthesis.b{size}.{conv}.conv.weight": (out, into, 3, 3), f"synthesis.b{size}.{conv}.conv.bias": (out,)}
        expected |= {f"torgb.b{size}.weight": (3, depth, 1, 1), f"torgb.b{size}.bias": (3,)}
    assert {name: tuple(tensor.shape) for name, tensor in tensors.items()} == expected


def test_a_tensorflow_pickle_reads_to_stylegan2s_architecture_and_tensors():
    content = read_network_pickle(ROOT / "tests" / "data" / "stylegan2_tf_network.pkl")
    assert set(content) == {"G", "D", "G_ema"} and isinstance(content["G_ema"], TFNetworkRecord)
    architecture = tf_architecture(content["G_ema"], "test")
    assert architecture["synthesis_kwargs"]["channel_max"] == 32
    tensors = tf_tensors(content["G_ema"], architecture, "test")
    assert all(isinstance(tensor, torch.Tensor) for tensor in tensors.values())
    assert any(name.startswith("mapping.") for name in tensors) and any(name.startswith("synthesis.b4.") for name in tensors)
    # (that these fill StyleGAN2 as NVIDIA's converter does: test_stylegan.py, bit for bit)
