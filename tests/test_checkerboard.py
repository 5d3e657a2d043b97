"""A finding kept true (docs/measurements.md, "The showcase"): the checkerboard that split the
former showcase's parts is in the generator, before any fit. Smooth features make the channel
fibres of nearer positions the more alike; a stride-2 transposed convolution whose taps differ by
the output's parity makes those of the same parity, further apart, the more alike."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from panda_lightning.generators import FaceDCGAN, FrozenGenerator, PhotoFaceDCGAN

OFFSETS = ((0, 1), (1, 0), (1, 1), (0, 2))  # the other parity, nearest; then the same parity


def parity_contrast(network: torch.nn.Module, layer: str, samples: int = 64) -> float:
    """How much more alike the (centred) channel fibres of positions of the same parity are than
    the nearest ones of the other: positive where the layer holds a checkerboard."""
    generator = FrozenGenerator(network, layer)
    activations = generator.activations(generator.preview_latents(samples, seed=0)).float()
    centred = activations - activations.mean(dim=(0, 2, 3), keepdim=True)
    height, width = centred.shape[-2:]
    similarity = {
        (dy, dx): F.cosine_similarity(centred[..., : height - dy, : width - dx], centred[..., dy:, dx:], dim=1, eps=1e-8).mean().item()
        for dy, dx in OFFSETS
    }
    return max(similarity[(1, 1)], similarity[(0, 2)]) - max(similarity[(0, 1)], similarity[(1, 0)])


def test_the_checkerboard_of_make_fits_former_generator_is_in_the_generator_not_the_fit():
    # At main.8 the DigiFace DCGAN's positions two apart (same parity) are more alike than
    # neighbours; the face-photo DCGAN's are smooth, as features of an image are.
    assert parity_contrast(FaceDCGAN(), "main.8") > 0.02
    assert parity_contrast(PhotoFaceDCGAN(), "main.8") < -0.05
    # At main.11 both hold one: their last stride-2 transposed convolutions make it.
    assert parity_contrast(PhotoFaceDCGAN(), "main.11") > 0.1
