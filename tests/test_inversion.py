"""A photo inverted into the generator: self-consistent on generated images whose latents are known,
saved and read back without running anything, and refusing what it was not made for; and an edit of
an inverted real photo is as local as on generated samples."""

from __future__ import annotations

import pytest
import torch

from panda_lightning import PandA
from panda_lightning.functional.editing import part_mask
from panda_lightning.generators import FrozenGenerator, PhotoFaceDCGAN, StyleGAN2
from panda_lightning.generators.adapters.stylegan import CONFIG_F
from panda_lightning.images import to_unit_range
from panda_lightning.inversion import Inversion, InversionSettings, invert, photo_digest
from panda_lightning.photos import Box, crop, load_photo

from test_photos import ASTRONAUT

QUICK = InversionSettings(starts=2, start_steps=3, latent_steps=5, layer_steps=5)


@pytest.fixture(scope="module")
def faces() -> FrozenGenerator:
    return FrozenGenerator(PhotoFaceDCGAN(), "main.8")


@pytest.mark.slow
def test_a_generated_image_is_found_again_to_30_db_at_the_layer(faces):
    target = to_unit_range(faces.generate(faces.preview_latents(1, seed=3)))[0]
    inversion = invert(faces, target, InversionSettings(latent_steps=100, layer_steps=300))
    latents, layer = inversion.stages["latents"], inversion.stages["layer"]
    assert layer.psnr >= 30 and layer.ssim > 0.95 and layer.psnr > latents.psnr + 3  # the layer stage adds detail
    assert latents.steps == 125 and layer.steps == 300
    reconstructed = inversion.images(faces)[0]
    assert (reconstructed - target).square().mean().item() == pytest.approx(10 ** (-layer.psnr / 10), rel=1e-3)


def test_an_inversion_is_saved_and_read_back_and_refuses_another_photo_or_layer(faces, tmp_path):
    photo = load_photo(ASTRONAUT)
    box = Box(135, 5, 190)
    inversion = invert(faces, crop(photo, box, 64), QUICK, box, photo)
    path = inversion.save(tmp_path / "astronaut.inversion.pt")
    again = Inversion.load(path).check_for(faces, photo)
    assert again.box == box and again.photo_size == (512, 512) and again.photo_digest == photo_digest(photo)
    assert torch.equal(again.activations, inversion.activations) and torch.equal(again.latents, inversion.latents)
    assert str(again.stages["layer"]) == str(inversion.stages["layer"])
    torch.testing.assert_close(again.images(faces), inversion.images(faces), rtol=0, atol=0)
    changed = photo.clone()
    changed[0, 0, 0] = 1 - changed[0, 0, 0]
    with pytest.raises(ValueError, match=r"was made of another photo \(or of this one changed since\): invert it again"):
        again.check_for(faces, changed)
    with pytest.raises(ValueError, match=r"holds activations \(128, 16, 16\) of layer 'main\.8', but the generator's layer 'main\.5' gives \(256, 8, 8\)"):
        again.check_for(FrozenGenerator(PhotoFaceDCGAN(), "main.5"), photo)
    (tmp_path / "cut.pt").write_bytes(path.read_bytes()[:1000])
    with pytest.raises(ValueError, match=r"inversion='.*cut\.pt' cannot be read \(\w+\): it is not a whole file that panda invert wrote"):
        Inversion.load(tmp_path / "cut.pt")
    torch.save({"format": "something else"}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match=r"is not an inversion that panda invert wrote"):
        Inversion.load(tmp_path / "other.pt")


def test_a_stylegan_is_searched_in_w_and_w_plus_from_its_mapped_starts():
    synthesis = {**CONFIG_F["synthesis_kwargs"], "channel_base": 512, "channel_max": 32}
    torch.manual_seed(0)
    generator = FrozenGenerator(StyleGAN2(architecture={**CONFIG_F, "img_resolution": 32, "synthesis_kwargs": synthesis}), "layer3")
    target = to_unit_range(generator.generate(generator.preview_latents(1, seed=1)))[0]
    for space, shape in [("w", (1, 8, 512)), ("w+", (1, 8, 512)), ("latents", (1, 512))]:
        inversion = invert(generator, target, InversionSettings(starts=2, start_steps=2, latent_steps=20, layer_steps=0, space=space))
        assert tuple(inversion.latents.shape) == shape, space
        if space == "w":
            assert torch.equal(inversion.latents[0, 0], inversion.latents[0, -1])  # one w for every layer
    with pytest.raises(ValueError, match=r"space='w\+' is a StyleGAN's; PhotoFaceDCGAN has none: use space='latents'"):
        invert(FrozenGenerator(PhotoFaceDCGAN(), "main.8"), target.new_zeros(3, 64, 64), InversionSettings(space="w+"))
    with pytest.raises(ValueError, match=r"space='z' must be one of 'latents', 'w', 'w\+'"):
        InversionSettings(space="z")


@pytest.mark.slow
def test_an_edit_of_an_inverted_photo_stays_in_its_part_as_on_generated_samples(converged, faces):
    model = PandA.load_from_checkpoint(converged / "checkpoints" / "last.ckpt").eval()
    photo = load_photo(ASTRONAUT)
    box = Box(135, 5, 190)
    inversion = invert(faces, crop(photo, box, 64), InversionSettings(), box, photo)
    parts = model.refine(inversion.activations, "full")
    ratios = {}
    for name, latents, activations, refined in [
        ("photo", inversion.latents, inversion.activations, parts),
        ("samples", None, None, None),
    ]:
        if name == "samples":
            latents = faces.preview_latents(8, seed=0)
            activations = faces.activations(latents)
            refined = model.refine(activations, "full")
        part = 7  # the top of the hair
        edit = lambda Z, refined=refined: model.local_edit(Z, [(part, 1, 3.0)], refined)  # noqa: E731
        before = to_unit_range(faces.images_at(latents, activations))
        after = to_unit_range(faces.images_at(latents, edit(activations)))
        region = torch.nn.functional.interpolate(
            part_mask(refined, part, 16, 16).reshape(-1, 1, 16, 16), size=(64, 64), mode="bilinear") > 0.5
        change = (after - before).abs().sum(1, keepdim=True)
        ratios[name] = (change[region].mean() / change[~region].mean()).item()
    assert ratios["photo"] >= 5 and ratios["photo"] >= ratios["samples"] / 1.5, ratios
