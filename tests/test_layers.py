"""Reading a layer's activations through hooks: names, selectors of tuple and dict outputs, early stop, shapes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from panda_lightning.generators.layers import (
    activations_at,
    feature_shape,
    layer_names,
    layer_outputs,
    resolve_layer,
    split_layer,
    with_replaced_output,
)


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


class TupleAndDictBlocks(nn.Module):
    """A block returning ``(features, skip)``, then one returning ``{"features": ..., "skip": ...}``,
    then a layer that runs twice."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3, padding=1)
        self.pair = nn.Identity()
        self.named = nn.Identity()
        self.twice = nn.ReLU()
        self.unused = nn.Identity()

    def forward(self, x):
        features, skip = self.pair((self.conv(x), x.mean(dim=(2, 3))))
        out = self.named({"features": features, "skip": skip})
        return self.twice(self.twice(out["features"] - 1) + out["skip"][:, :1, None, None])


def test_selectors_read_and_edit_one_element_of_a_tuple_or_dict_output():
    generator, x = TupleAndDictBlocks(), torch.randn(2, 2, 5, 5)
    expected = generator.conv(x)
    for layer in ("pair[0]", "named['features']", 'named["features"]'):
        torch.testing.assert_close(activations_at(generator, layer, lambda: generator(x)), expected)
        edited = with_replaced_output(generator, layer, lambda z: z + 10, lambda: generator(x))
        torch.testing.assert_close(edited, generator.twice(generator.twice(expected + 9) + x.mean(dim=(2, 3))[:, :1, None, None]))
    assert split_layer("block['x'][0]") == ("block", ("x", 0))


def test_a_tuple_output_without_a_selector_names_its_elements():
    generator = TupleAndDictBlocks()
    with pytest.raises(ValueError, match=r"layer='pair' outputs a tuple, not a tensor; name one of its elements: 'pair\[0\]' \(2, 4, 5, 5\), 'pair\[1\]' \(2, 2\)"):
        activations_at(generator, "pair", lambda: generator(torch.randn(2, 2, 5, 5)))


@pytest.mark.parametrize(
    "layer, message",
    [
        ("pair[2]", r"layer='pair\[2\]': the output \(tuple\) has no element \[2\]; its elements: \[0\] \(2, 4, 5, 5\), \[1\] \(2, 2\)"),
        ("named['feature']", r"has no element \['feature'\]; its elements: \['features'\] \(2, 4, 5, 5\), \['skip'\] \(2, 2\)"),
        ("conv[0]", r"layer='conv\[0\]' selects \[0\] from a tensor \(2, 4, 5, 5\): drop the selector"),
        ("pair[1]", r"layer='pair\[1\]' outputs \(2, 2\); PandA needs a convolutional feature map of shape \(N, C, H, W\)"),
        ("pair[first]", r"layer='pair\[first\]': '\[first\]' is no selector; .* \[index\] or \['key'\]"),
    ],
)
def test_bad_selectors_are_named(layer, message):
    generator = TupleAndDictBlocks()
    with pytest.raises(ValueError, match=message):
        activations_at(generator, layer, lambda: generator(torch.randn(2, 2, 5, 5)))


def test_a_module_that_runs_twice_is_read_and_edited_at_its_first_output():
    generator, x = TupleAndDictBlocks(), torch.randn(2, 2, 5, 5)
    first = torch.relu(generator.conv(x) - 1)
    torch.testing.assert_close(activations_at(generator, "twice", lambda: generator(x)), first)
    edited = with_replaced_output(generator, "twice", lambda z: z * 0, lambda: generator(x))
    torch.testing.assert_close(edited, torch.relu(x.mean(dim=(2, 3))[:, :1, None, None]).expand_as(first))


def test_layer_outputs_lists_every_element_in_computing_order():
    generator = TupleAndDictBlocks()
    rows = layer_outputs(generator, lambda: generator(torch.randn(2, 2, 5, 5)))
    assert [(row.layer, row.output, row.calls, row.usable) for row in rows] == [
        ("conv", "(2, 4, 5, 5)", 1, True),
        ("pair[0]", "(2, 4, 5, 5)", 1, True),
        ("pair[1]", "(2, 2)", 1, False),
        ("named['features']", "(2, 4, 5, 5)", 1, True),
        ("named['skip']", "(2, 2)", 1, False),
        ("twice", "(2, 4, 5, 5)", 2, True),
        ("unused", "-", 0, False),
    ]
