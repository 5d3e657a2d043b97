"""Each locality method's candidates for a region, in its own order of priority, which the
protocol's budget cuts: a layer method's parts by their share inside the region, then the
appearances by Eq. 18's spread there; a latent method's directions in their order."""

from __future__ import annotations

import pytest
import torch

from benchmarks.evidence.face_regions import REGIONS
from benchmarks.evidence.locality.methods import at_layer, latent_method, layer_method, part_shares
from benchmarks.evidence.locality.protocol import Samples
from panda_lightning.functional.editing import appearance_scores
from panda_lightning.generators import FaceDCGAN

LAYER, SIZE = "main.8", 16  # the face DCGAN's layer: (128, 16, 16) for 64 x 64 images


@pytest.fixture(scope="module")
def generator() -> FaceDCGAN:
    return FaceDCGAN().eval().requires_grad_(False)


def samples_with_eyes_on_the_left(generator: FaceDCGAN, count: int = 8) -> Samples:
    latents = generator.sample_latents(count, torch.Generator().manual_seed(0))
    with torch.no_grad():
        images = (generator(latents) + 1) / 2
    regions = torch.zeros(count, len(REGIONS), 64, 64)
    regions[:, REGIONS.index("eyes"), :, :32] = 1
    regions[:, REGIONS.index("mouth"), 48:, 16:48] = 1
    return Samples(latents, images, regions)


def parts() -> torch.Tensor:
    """Three parts at the layer: the right half, the left half's top, the left three quarters."""
    masks = torch.zeros(3, SIZE, SIZE)
    masks[0, :, SIZE // 2 :] = 1
    masks[1, : SIZE // 2, : SIZE // 2] = 1
    masks[2, :, : 3 * SIZE // 4] = 1
    return masks


def test_a_parts_share_is_its_mass_inside_the_region_over_the_samples():
    regions = torch.zeros(2, 8, 8)
    regions[:, :, :4] = 1  # the left half
    shares = part_shares(parts()[:, ::2, ::2], regions)  # at 8 x 8, shown at the regions' 8 x 8
    torch.testing.assert_close(shares, torch.tensor([0.0, 1.0, 2 / 3]))
    per_sample = torch.stack([parts()[:, ::2, ::2], parts()[[1, 0, 2], ::2, ::2]])  # the second swaps parts 0 and 1
    # Mass-weighted over the samples: part 0 holds 32 positions outside, then 16 inside.
    torch.testing.assert_close(part_shares(per_sample, regions), torch.tensor([1 / 3, 1 / 3, 2 / 3]))


def spread_order(generator: FaceDCGAN, samples: Samples, appearances: torch.Tensor, mask: torch.Tensor) -> list[int]:
    """The appearances by Eq. 18's spread at ``mask``, computed here through ``appearance_scores``."""
    Z = at_layer(generator, LAYER, samples.latents)
    unit = appearances / appearances.norm(dim=0)
    weights = (mask / mask.sum()).flatten()[:, None]
    spread = torch.stack([appearance_scores(Z, unit, j, weights)[:, 0].std() for j in range(unit.shape[1])])
    return spread.argsort(descending=True).tolist()


def test_a_layer_method_offers_the_regions_parts_then_their_most_varied_appearances(generator):
    samples = samples_with_eyes_on_the_left(generator)
    appearances = torch.randn(128, 5, generator=torch.Generator().manual_seed(1)) * torch.linspace(0.5, 3, 5)
    method = layer_method("parts", generator, LAYER, appearances, lambda s: parts(), 3, 1.0, 0.0)
    labels = [candidate.label for candidate in method.candidates("eyes", samples)]
    assert len(labels) == 2 * 5 * 2  # two parts, five appearances, both ways
    first, second = (spread_order(generator, samples, appearances, parts()[k]) for k in (1, 2))  # by share: 1.0, 2/3
    expected = [
        f"part {k}, appearance {order[rank]} {sign}"
        for rank in range(5)
        for k, order in ((1, first), (2, second))
        for sign in "+-"
    ]
    assert labels == expected
    # The same candidates each time, so that their scores are computed once.
    assert method.candidates("eyes", samples)[0] is method.candidates("eyes", samples)[0]


def test_at_the_regions_own_mask_only_the_appearances_are_ranked(generator):
    samples = samples_with_eyes_on_the_left(generator)
    appearances = torch.randn(128, 4, generator=torch.Generator().manual_seed(2))

    def masks(s: Samples) -> torch.Tensor:  # each region's mask at the layer, per sample
        return torch.nn.functional.avg_pool2d(s.regions, 4)

    method = layer_method("at the mask", generator, LAYER, appearances, masks, len(REGIONS), 1.0, 0.0,
                          mask_label="mask", region_masks=True)
    order = spread_order(generator, samples, appearances, masks(samples)[0, REGIONS.index("mouth")])
    labels = [candidate.label for candidate in method.candidates("mouth", samples)]
    assert labels == [f"mask mouth, appearance {j} {sign}" for j in order for sign in "+-"]


def test_a_latent_method_offers_its_directions_in_order_both_ways_for_every_region(generator):
    directions = torch.eye(100)[:3]
    method = latent_method("directions", generator, directions, 0.0)
    samples = samples_with_eyes_on_the_left(generator, 2)
    for region in REGIONS:
        assert [c.label for c in method.candidates(region, samples)] == [
            "direction 0 +", "direction 0 -", "direction 1 +", "direction 1 -", "direction 2 +", "direction 2 -"
        ]
