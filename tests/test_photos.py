"""A person's photo: read through the decoding gate (turned, made RGB, bombs refused), its box, and
an edit carried back into the box alone. The real photo is NASA's portrait of Eileen Collins
(public domain), as scikit-image ships it (``skimage/data/astronaut.png``)."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from panda_lightning.photos import MIN_BOX, Box, carry_back, crop, feather, load_photo

from conftest import ROOT
from test_decoding import EPS, png_declaring

ASTRONAUT = ROOT / "tests" / "data" / "astronaut.png"


def astronaut_jpeg() -> bytes:
    """The portrait as a phone gives a photo: a JPEG (quality 92)."""
    buffer = io.BytesIO()
    Image.open(ASTRONAUT).convert("RGB").save(buffer, format="JPEG", quality=92)
    return buffer.getvalue()


def saved(image: Image.Image, format: str = "PNG", **options) -> bytes:  # noqa: A002
    buffer = io.BytesIO()
    image.save(buffer, format=format, **options)
    return buffer.getvalue()


def test_a_real_photo_reads_as_rgb_in_the_unit_range():
    photo = load_photo(ASTRONAUT)
    assert photo.shape == (3, 512, 512) and photo.dtype == torch.float32
    assert 0 <= photo.min() and photo.max() <= 1 and photo.std() > 0.1
    with Image.open(ASTRONAUT) as image:
        assert torch.equal((photo * 255).round().to(torch.uint8).permute(1, 2, 0), torch.from_numpy(np.array(image.convert("RGB"))))


def test_grey_transparent_and_turned_photos_are_converted_not_refused():
    grey = load_photo(saved(Image.new("L", (40, 30), 128)))
    assert grey.shape == (3, 30, 40) and torch.allclose(grey, torch.full_like(grey, 128 / 255))
    clear = Image.new("RGBA", (40, 30), (255, 0, 0, 0))
    clear.paste((0, 0, 255, 255), (0, 0, 20, 30))  # opaque blue on the left, transparent red on the right
    rgba = load_photo(saved(clear))
    assert torch.equal(rgba[:, 0, 0], torch.tensor([0.0, 0.0, 1.0])) and torch.equal(rgba[:, 0, 39], torch.ones(3))  # white behind
    # A phone's JPEG: stored on its side, with EXIF orientation 6 (turn 90 degrees clockwise to view).
    sideways = Image.new("RGB", (40, 30), "black")
    sideways.paste("white", (0, 0, 10, 30))  # the stored image's left strip
    exif = Image.Exif()
    exif[0x0112] = 6
    upright = load_photo(saved(sideways, "JPEG", exif=exif.tobytes(), quality=95))
    assert upright.shape == (3, 40, 30)  # turned: 30 wide, 40 high
    assert upright[:, :8].mean() > 0.9 and upright[:, 12:].mean() < 0.1  # the left strip is now at the top


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
@pytest.mark.parametrize(
    "content, message",
    [
        (b"not an image at all", r"^photo is not a PNG or JPEG image\.$"),
        (EPS, r"^photo is not a PNG or JPEG image\.$"),
        (saved(Image.new("RGB", (8, 8)), "GIF"), r"^photo is not a PNG or JPEG image\.$"),
        (saved(Image.new("RGB", (64, 64)), "JPEG")[:300], r"^photo cannot be (decoded|read) as a PNG or JPEG image"),
        (png_declaring(100_000, 100_000), r"^photo declares more than \d+ pixels; at most 50000000 pixels are accepted\.$"),
        (png_declaring(10_000, 6_000), r"^photo is 10000 x 6000 pixels; at most 50000000 pixels are accepted\.$"),
    ],
    ids=["not an image", "EPS", "GIF", "truncated", "bomb", "too large"],
)
def test_a_bad_photo_is_named_in_one_line(content, message):
    with pytest.raises(ValueError, match=message):
        load_photo(content)


def test_the_box_is_parsed_checked_and_centred_by_default():
    assert Box.parse(" 135, 5,190 ") == Box(135, 5, 190) and str(Box(135, 5, 190)) == "135,5,190"
    assert Box.centred(300, 512) == Box(106, 0, 300) and Box.centred(512, 512) == Box(0, 0, 512)
    for text in ["1,2", "a,b,c", "-1,0,40", "1,2,3,4"]:
        with pytest.raises(ValueError, match=r"must be three whole numbers of pixels, x,y,size"):
            Box.parse(text)
    with pytest.raises(ValueError, match=r"box=400,0,200 reaches \(600, 200\), outside the photo of 512 x 512 pixels"):
        Box(400, 0, 200).check(512, 512)
    with pytest.raises(ValueError, match=rf"box=0,0,31 is 31 pixels a side; it must be at least {MIN_BOX}"):
        Box(0, 0, 31).check(512, 512)
    assert Box(312, 312, 200).check(512, 512) == Box(312, 312, 200)


def test_an_edit_is_carried_back_into_the_box_alone():
    photo = load_photo(ASTRONAUT)
    box = Box(135, 5, 190)
    reconstructed = crop(photo, box, 64)
    assert reconstructed.shape == (3, 64, 64)
    edited = reconstructed.clone()
    edited[:, 20:40, 20:40] += 0.3  # a change in the middle of the box
    carried = carry_back(photo, box, reconstructed, edited)
    outside = torch.ones(512, 512, dtype=torch.bool)
    outside[box.y : box.y + box.size, box.x : box.x + box.size] = False
    assert torch.equal(carried[:, outside], photo[:, outside])  # nothing outside the box moves, to the bit
    change = (carried - photo).abs().sum(0)
    centre = change[box.y + 70 : box.y + 115, box.x + 70 : box.x + 115]
    assert centre.mean() > 0.5 and change[box.y : box.y + 40, box.x : box.x + 40].max() < 1e-6  # where the edit changed nothing
    assert torch.equal(carry_back(photo, box, reconstructed, reconstructed), photo)  # no change: the photo itself
    ramp = feather(16, 4)
    assert ramp[8, 8] == 1 and ramp[0, 8] == pytest.approx(0.125) and torch.equal(ramp, ramp.T) and torch.equal(ramp, ramp.flip(0))
