"""A person's photo: read through the decoding gate, the square box that the generator's image
stands for, and an edit carried back onto the photo at the photo's own resolution.

The bundled generators draw centred face crops, so a photo is inverted within a box around the
face: ``Box(x, y, size)``, a square of ``size`` pixels whose top left corner is ``(x, y)``. What
an edit changes is carried back inside that box alone: the photo plus the change the edit made to
the generator's reconstruction (edited minus reconstructed), enlarged to the box and feathered at
its border, so that the photo's own detail stays wherever the edit changed nothing, and nothing
outside the box moves.

Photos ``(3, H, W)`` in ``[0, 1]``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps
from torch import Tensor

from panda_lightning.decoding import MAX_PIXELS, decode_image

PHOTO_FORMATS = ("PNG", "JPEG")
MIN_BOX = 32  # pixels a side: a smaller box holds too little of a face to invert


@dataclass(frozen=True)
class Box:
    """A square of ``size`` pixels of a photo, its top left corner at ``(x, y)``."""

    x: int
    y: int
    size: int

    @classmethod
    def parse(cls, text: str) -> Box:
        """``"x,y,size"`` (``--box 140,10,180``)."""
        found = re.fullmatch(r"\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*", str(text))
        if found is None:
            raise ValueError(f"box={text!r} must be three whole numbers of pixels, x,y,size: the top left corner and the side of a square.")
        return cls(*map(int, found.groups()))

    @classmethod
    def centred(cls, height: int, width: int) -> Box:
        """The largest square in the middle of a photo: the box when none is given."""
        size = min(height, width)
        return cls((width - size) // 2, (height - size) // 2, size)

    def check(self, height: int, width: int) -> Box:
        """This box, when it lies within a photo of ``height x width`` and is at least :data:`MIN_BOX`."""
        if self.size < MIN_BOX:
            raise ValueError(f"box={self} is {self.size} pixels a side; it must be at least {MIN_BOX}.")
        if self.x + self.size > width or self.y + self.size > height:
            raise ValueError(
                f"box={self} reaches ({self.x + self.size}, {self.y + self.size}), outside the photo of "
                f"{width} x {height} pixels: it must lie within it."
            )
        return self

    def __str__(self) -> str:
        return f"{self.x},{self.y},{self.size}"


def load_photo(source: str | os.PathLike | bytes, what: str | None = None) -> Tensor:
    """A PNG or JPEG photo as ``(3, H, W)`` in ``[0, 1]``: turned as its EXIF orientation says (as
    a phone's camera records it), grey-scale made RGB, and a transparent one put on white. Any other
    format, a truncated file or one of more than ``decoding.MAX_PIXELS`` pixels is refused (a
    ``ValueError`` naming it) before its pixels are decoded."""
    what = what or ("photo" if isinstance(source, bytes) else f"photo {str(source)!r}")
    with decode_image(source, what, formats=PHOTO_FORMATS, max_pixels=MAX_PIXELS) as image:
        image = ImageOps.exif_transpose(image)
        if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
            rgba = image.convert("RGBA")
            image = Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba)
        pixels = np.asarray(image.convert("RGB"), dtype=np.float32) / 255
    return torch.from_numpy(pixels.copy()).permute(2, 0, 1)


def crop(photo: Tensor, box: Box, size: int) -> Tensor:
    """The box of ``photo``, resized (area-averaged, or bilinear when enlarged) to ``size x size``: ``(3, size, size)``."""
    square = photo[:, box.y : box.y + box.size, box.x : box.x + box.size][None]
    mode = "area" if box.size >= size else "bilinear"
    return F.interpolate(square, size=(size, size), mode=mode, **({} if mode == "area" else {"align_corners": False}))[0]


def feather(size: int, border: int) -> Tensor:
    """``(size, size)``: 1 inside, falling linearly to 0 over the outer ``border`` pixels."""
    ramp = ((torch.arange(size, dtype=torch.float32) + 0.5) / max(border, 1)).clamp(max=1)
    ramp = torch.minimum(ramp, ramp.flip(0))
    return torch.minimum(ramp[:, None], ramp[None, :])


def carry_back(photo: Tensor, box: Box, reconstructed: Tensor, edited: Tensor, border: int | None = None) -> Tensor:
    """``photo`` with the change of ``reconstructed -> edited`` (the generator's images of the box,
    ``(3, s, s)`` in ``[0, 1]``) enlarged to the box and added inside it, feathered over ``border``
    pixels at its edge (a sixteenth of the box by default): the photo's detail stays where the edit
    changed nothing, and nothing outside the box moves."""
    border = max(1, box.size // 16) if border is None else border
    change = F.interpolate((edited - reconstructed)[None].float(), size=(box.size, box.size), mode="bilinear", align_corners=False)[0]
    result = photo.clone()
    inside = result[:, box.y : box.y + box.size, box.x : box.x + box.size]
    inside += change * feather(box.size, border)
    inside.clamp_(0, 1)
    return result
