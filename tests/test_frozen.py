"""The frozen generator read and edited at one layer: frozen weights, and gradients with respect to
what goes in (latents, the layer's activations) when a caller asks, as inverting a photo needs."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from panda_lightning.generators import PhotoFaceDCGAN
from panda_lightning.generators.frozen import FrozenGenerator
from panda_lightning.generators.latents import GaussianLatents


def test_the_network_is_frozen_and_read_at_its_layer(tiny_generator):
    tiny_generator.train()
    generator = FrozenGenerator(tiny_generator, "main.3")
    assert not tiny_generator.training and not any(p.requires_grad for p in tiny_generator.parameters())
    assert generator.feature_shape == (8, 8, 8) and generator.sample_bytes == 8 * 8 * 8 * 4
    latents = generator.preview_latents(2, seed=0)
    torch.testing.assert_close(generator.activations(latents), tiny_generator.main[:4](latents))
    torch.testing.assert_close(generator.generate(latents), tiny_generator(latents))
    assert "FrozenGenerator(TinyConvGenerator, layer='main.3'" in repr(generator)


def test_a_wrong_layer_or_no_latents_say_what_is_valid(tiny_generator):
    with pytest.raises(ValueError, match=r"layer='main\.9' is not a sub-module of TinyConvGenerator.*Valid layers: main, main\.0"):
        FrozenGenerator(tiny_generator, "main.9")
    with pytest.raises(ValueError, match=r"latents=None, and Sequential has no sample_latents method"):
        FrozenGenerator(nn.Sequential(nn.ConvTranspose2d(4, 3, 4)), "0")
    assert FrozenGenerator(nn.Sequential(nn.ConvTranspose2d(4, 3, 4)), "0", GaussianLatents([4, 1, 1])).feature_shape == (3, 4, 4)


def test_no_graph_is_kept_unless_asked(tiny_generator):
    generator = FrozenGenerator(tiny_generator, "main.3")
    scale = nn.Parameter(torch.tensor(2.0))  # as a fitted model's factors, which require gradients
    latents = generator.preview_latents(2, seed=0)
    assert not generator.generate(latents, edit=lambda Z: scale * Z).requires_grad
    assert not generator.activations(latents.requires_grad_()).requires_grad
    assert generator.generate(latents, edit=lambda Z: scale * Z, grad=True).requires_grad


def test_gradients_with_respect_to_the_latents_are_the_networks(tiny_generator):
    network = tiny_generator.double()
    generator = FrozenGenerator(network, "main.3")
    latents = generator.preview_latents(3, seed=1).double().requires_grad_()
    weights = torch.randn(3, 3, 16, 16, dtype=torch.float64)
    (ours,) = torch.autograd.grad((generator.generate(latents, grad=True) * weights).sum(), latents)
    (theirs,) = torch.autograd.grad((network(latents) * weights).sum(), latents)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=0)
    (ours,) = torch.autograd.grad((generator.activations(latents, grad=True) * weights[:, :1, :8, :8]).sum(), latents)
    (theirs,) = torch.autograd.grad((network.main[:4](latents) * weights[:, :1, :8, :8]).sum(), latents)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=0)


@pytest.mark.parametrize("runs_from_layer", [False, True], ids=["through the hook", "forward_from"])
def test_gradients_with_respect_to_the_layers_activations(runs_from_layer):
    torch.manual_seed(0)
    network = PhotoFaceDCGAN().double()  # its real weights
    generator = FrozenGenerator(network, "main.8")
    if not runs_from_layer:
        network.forward_from = None  # (then images come from a whole pass, the layer's output replaced)
    assert generator.runs_from_layer is runs_from_layer
    latents = generator.preview_latents(2, seed=0).double()
    Z = generator.activations(latents).detach().requires_grad_()
    images = generator.images_at(latents, Z, grad=True)
    weights = torch.randn_like(images)
    (ours,) = torch.autograd.grad((images * weights).sum(), Z)
    (theirs,) = torch.autograd.grad((network.main[9:](Z) * weights).sum(), Z)
    torch.testing.assert_close(ours, theirs)
