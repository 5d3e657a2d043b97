"""Reading a layer's activations through hooks: names, early stop, shapes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from panda_lightning.layers import activations_at, feature_shape, layer_names, resolve_layer


class MustNotRun(nn.Module):
    def forward(self, x):
        raise AssertionError("a layer after the requested one ran")


def test_activations_stop_at_the_layer_and_equal_the_forward_pass(tiny_generator):
    latents = torch.randn(2, 8, 1, 1)
    expected = tiny_generator.main[:4](latents)
    tiny_generator.main.append(MustNotRun())
    Z = activations_at(tiny_generator, "main.3", lambda: tiny_generator(latents))
    torch.testing.assert_close(Z, expected)
    assert feature_shape(tiny_generator, "main.3", latents) == (8, 8, 8)


def test_unknown_layer_lists_the_valid_ones_and_a_close_match(tiny_generator):
    with pytest.raises(ValueError, match=r"layer='main\.33'.*Did you mean 'main\.3'.*Valid layers: main, main\.0, main\.1"):
        resolve_layer(tiny_generator, "main.33")
    with pytest.raises(ValueError, match="layer=''"):
        resolve_layer(tiny_generator, "")
    assert "main.5" in layer_names(tiny_generator)


def test_a_layer_that_is_not_a_feature_map_is_refused():
    generator = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
    with pytest.raises(ValueError, match=r"layer='1' outputs \(2, 3\).*\(N, C, H, W\)"):
        activations_at(generator, "1", lambda: generator(torch.randn(2, 4)))


def test_a_layer_the_forward_pass_never_uses_is_reported():
    generator = nn.Module()
    generator.used, generator.unused = nn.Identity(), nn.Identity()
    generator.forward = lambda x: generator.used(x)
    with pytest.raises(RuntimeError, match="never ran layer='unused'"):
        activations_at(generator, "unused", lambda: generator(torch.randn(1, 2, 3, 3)))
