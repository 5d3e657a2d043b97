"""Pictures of parts: overlays on generated images, and atomic PNG files."""

from __future__ import annotations

import io
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor

from panda_lightning.decoding import decode_image
from panda_lightning.files import write_atomically
from panda_lightning.functional.editing import part_mask


def to_unit_range(images: Tensor) -> Tensor:
    """Generator output in ``[-1, 1]`` to ``[0, 1]``."""
    return images.add(1).div(2).clamp(0, 1)


def difference_image(original: Tensor, edited: Tensor) -> Tensor:
    """Where images ``(N, 3, H, W)`` in ``[0, 1]`` changed: the absolute change summed over colours,
    in grey, white at the largest change among them."""
    difference = (edited - original).abs().sum(dim=1, keepdim=True)
    return (difference / difference.amax().clamp_min(1e-12)).expand_as(original)


def part_masks(parts: Tensor, height: int, width: int, size: tuple[int, int]) -> Tensor:
    """Parts ``(S, R_S)``, or each sample's ``(N, S, R_S)``, as masks ``(R_S, *size)`` or
    ``(N, R_S, *size)`` in ``[0, 1]``, each scaled by its max."""
    maps = torch.stack([part_mask(parts, k, height, width) for k in range(parts.shape[-1])], dim=-3)
    batched = maps.reshape(-1, *maps.shape[-3:])
    resized = F.interpolate(batched, size=size, mode="bilinear", align_corners=False).clamp(0, 1)
    return resized.reshape(*maps.shape[:-2], *size)


def part_colours(num_parts: int) -> Tensor:
    """``(R_S, 3)`` distinct colours (evenly spaced hues)."""
    hue = 6 * torch.arange(num_parts) / num_parts
    red = (hue - 3).abs() - 1
    green = 2 - (hue - 2).abs()
    blue = 2 - (hue - 4).abs()
    return torch.stack([red, green, blue], dim=1).clamp(0, 1)


def segmentation_overlay(images: Tensor, parts: Tensor, height: int, width: int) -> Tensor:
    """``(N, 3, H_img, W_img)``: each pixel in the colour of its strongest part, over the image in
    grey. ``parts``: the global ``(S, R_S)`` or each sample's own ``(N, S, R_S)``."""
    return _segmentation_over(images, part_masks(parts.float().cpu(), height, width, images.shape[-2:]))


def _segmentation_over(images: Tensor, masks: Tensor) -> Tensor:
    strongest = masks.argmax(dim=-3)  # (H, W) or (N, H, W)
    segmentation = rearrange(part_colours(masks.shape[-3])[strongest], "... h w c -> ... c h w")
    grey = images.mean(dim=1, keepdim=True).expand_as(images)
    return 0.5 * grey + 0.5 * segmentation


def parts_columns(images: Tensor, parts: Tensor, height: int, width: int) -> tuple[Tensor, list[str], list[Tensor | None]]:
    """The cells of :func:`parts_grid`, ``(N, 2 + R_S, 3, H_img, W_img)``, with their column labels
    and colours (the parts' legend)."""
    masks = part_masks(parts.float().cpu(), height, width, images.shape[-2:])  # (R, H, W)
    colours = part_colours(masks.shape[0])
    grey = images.mean(dim=1, keepdim=True).expand_as(images)
    columns = [images, _segmentation_over(images, masks)]
    columns += [grey * (1 - 0.7 * mask) + 0.7 * mask * colour.view(3, 1, 1) for mask, colour in zip(masks[:, None], colours)]
    labels = ["image", "all parts", *(f"part {k}" for k in range(len(colours)))]
    return torch.stack(columns, dim=1), labels, [None, None, *colours]


def parts_grid(images: Tensor, parts: Tensor, height: int, width: int) -> Tensor:
    """A picture ``(3, H_grid, W_grid)`` in ``[0, 1]``: one row per image; columns are the image,
    all parts (each pixel in the colour of its strongest part), then each part painted in its
    colour over the image in grey, as strong as the part is there.

    Args:
        images: ``(N, 3, H_img, W_img)`` in ``[0, 1]``.
        parts: ``(S, R_S)`` with ``S = height * width``.
    """
    cells, labels, colours = parts_columns(images, parts, height, width)
    return tile(cells, columns=labels, column_colours=colours)


def refinement_grid(
    images: Tensor, parts: Sequence[Tensor], height: int, width: int, labels: Sequence[str] | None = None
) -> Tensor:
    """The layout of the paper's Fig. 8, ``(3, H_grid, W_grid)``: one column per image; the images,
    then a row of parts over them for each of ``parts`` (global ``(S, R_S)`` or refined
    ``(N, S, R_S)``), each pixel in the colour of its strongest part; ``labels`` name the rows
    of ``parts``."""
    rows = [images] + [segmentation_overlay(images, each, height, width) for each in parts]
    return tile(torch.stack(rows), rows=None if labels is None else ["images", *labels])


def saliency_grid(
    images: Tensor, saliency: Tensor, located: Tensor | None = None, appearances: Sequence[int] | None = None
) -> Tensor:
    """A picture ``(3, H_grid, W_grid)``: one row per image; the image, then for each appearance
    its saliency map (grey at 0, scaled by the appearance's largest magnitude in these images)
    and, given ``located``, the image lit where the appearance is localised.

    Args:
        images: ``(N, 3, H_img, W_img)`` in ``[0, 1]``.
        saliency: ``(N, K, h, w)`` from :func:`panda_lightning.functional.editing.saliency_maps`.
        located: ``(N, K, h, w)`` booleans from :func:`panda_lightning.functional.editing.localise`.
        appearances: the index of each of the ``K`` appearances, for the labels; ``0, ..., K-1`` by default.
    """
    size = images.shape[-2:]
    scale = saliency.abs().amax(dim=(0, 2, 3), keepdim=True).clamp_min(torch.finfo(saliency.dtype).tiny)
    grey = F.interpolate((saliency / scale + 1) / 2, size=size, mode="nearest")
    lit = None if located is None else F.interpolate(located.float(), size=size, mode="nearest")
    indices = list(range(saliency.shape[1])) if appearances is None else list(appearances)
    columns, labels = [images], ["image"]
    for k, index in enumerate(indices):
        columns.append(grey[:, k : k + 1].expand_as(images))
        labels.append(f"appearance {index}")
        if lit is not None:
            columns.append(images * (0.2 + 0.8 * lit[:, k : k + 1]))
            labels.append(f"{index} located")
    return tile(torch.stack(columns, dim=1), columns=labels)


def load_mask(source: str | os.PathLike | bytes) -> Tensor:
    """A hand-drawn mask from a PNG file (its path or bytes), white = 1: ``(H_file, W_file)`` in
    ``[0, 1]``. Any other format is refused before it is decoded (:func:`~panda_lightning.decoding.decode_image`)."""
    what = "mask" if isinstance(source, bytes) else f"mask {str(source)!r}"
    with decode_image(source, what, formats=("PNG",)) as picture:
        return mask_from_image(picture)


def mask_from_image(picture: Image.Image) -> Tensor:
    """A picture's grey levels as a mask, white = 1: ``(H, W)`` in ``[0, 1]``, in whole 1/255 steps."""
    return torch.from_numpy(np.asarray(picture.convert("L"), dtype=np.float32) / 255)


def mask_png(mask: Tensor) -> bytes:
    """A mask ``(H, W)`` in ``[0, 1]`` as a grey PNG (white = 1) that :func:`load_mask` reads back
    exactly when its values are whole 1/255 steps."""
    buffer = io.BytesIO()
    Image.fromarray((mask.clamp(0, 1) * 255).round().to(torch.uint8).numpy()).save(buffer, format="PNG")
    return buffer.getvalue()


READABLE_SIZE = 128  # cells smaller than this are enlarged (nearest) by a whole factor
LARGEST_SIZE = 256  # cells larger than this are shrunk (area) to it: a 1024 px generator's pictures stay small
LABEL_SIZE = 13  # font size of the labels, in pixels
_MARGIN = 6
HEADER_HEIGHT = LABEL_SIZE + 2 * _MARGIN  # the strip of column labels above a grid


def readable(cells: Tensor, smallest: int = READABLE_SIZE, largest: int | None = LARGEST_SIZE) -> Tensor:
    """Cells ``(..., 3, H, W)`` at a readable size: enlarged by the smallest whole factor that
    makes their sides at least ``smallest`` (nearest neighbour: every pixel of the generator stays
    a visible square), or shrunk (area averaging) so that their longer side is ``largest``
    (``None``: never shrunk)."""
    height, width = cells.shape[-2:]
    if largest is not None and max(height, width) > largest:
        return at_most(cells, largest)
    factor = max(1, math.ceil(smallest / min(height, width)))
    if factor == 1:
        return cells
    return cells.repeat_interleave(factor, dim=-2).repeat_interleave(factor, dim=-1)


def at_most(images: Tensor, largest: int = LARGEST_SIZE) -> Tensor:
    """Images ``(..., 3, H, W)`` shrunk by area averaging so that their longer side is at most
    ``largest``; as they are when already that small."""
    height, width = images.shape[-2:]
    if max(height, width) <= largest:
        return images
    scale = largest / max(height, width)
    size = (max(1, round(height * scale)), max(1, round(width * scale)))
    flat = images.reshape(-1, *images.shape[-3:])
    return F.interpolate(flat, size=size, mode="area").reshape(*images.shape[:-2], *size)


def tile(
    cells: Tensor,
    padding: int = 2,
    rows: Sequence[str] | None = None,
    columns: Sequence[str] | None = None,
    column_colours: Tensor | Sequence[Tensor | None] | None = None,
    largest: int | None = LARGEST_SIZE,
) -> Tensor:
    """Cells ``(rows, cols, 3, H, W)`` into one ``(3, H_grid, W_grid)`` picture on white, each
    at a readable size (:func:`readable`, at most ``largest`` a side), with each row's label at
    its left and each column's above it; a column's label is drawn on its colour when
    ``column_colours`` gives one (the parts' legend)."""
    cells = F.pad(readable(cells, largest=largest), (padding,) * 4, value=1.0)
    grid = rearrange(cells, "r c ch h w -> ch (r h) (c w)")
    if rows is None and columns is None:
        return grid
    num_rows, num_columns, _, height, width = cells.shape
    for name, labels, count in (("rows", rows, num_rows), ("columns", columns, num_columns)):
        if labels is not None and len(labels) != count:
            raise ValueError(f"{name} has {len(labels)} labels for {count} {name} of cells.")
    font = _font()
    left = 0 if rows is None else label_width(rows)
    top = 0 if columns is None else HEADER_HEIGHT
    canvas = Image.new("RGB", (left + grid.shape[2], top + grid.shape[1]), "white")
    canvas.paste(to_pil(grid), (left, top))
    draw = ImageDraw.Draw(canvas)
    for i, label in enumerate(rows or []):
        draw.text((_MARGIN // 2, top + i * height + height // 2), label, fill="black", font=font, anchor="lm")
    colours = list(column_colours) if column_colours is not None else [None] * num_columns
    for j, label in enumerate(columns or []):
        x0, colour = left + j * width, colours[j]
        text = "black"
        if colour is not None:
            fill = tuple(int(round(255 * float(c))) for c in colour)
            draw.rectangle((x0 + padding, 0, x0 + width - padding - 1, top - 1), fill=fill)
            text = "black" if sum(fill) > 380 else "white"
        draw.text((x0 + width // 2, top // 2), label, fill=text, font=font, anchor="mm")
    return torch.from_numpy(np.asarray(canvas, dtype=np.float32) / 255).permute(2, 0, 1)


def label_width(rows: Sequence[str]) -> int:
    """The width of the strip of row labels at the left of a grid, in pixels."""
    font = _font()
    return _MARGIN + max(math.ceil(font.getlength(label)) for label in rows)


def _font() -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    # Pillow's own font: no font file needed (a bitmap one where Pillow lacks FreeType).
    return ImageFont.load_default(size=LABEL_SIZE)


def to_pil(image: Tensor) -> Image.Image:
    """``image: (3, H, W)`` in ``[0, 1]`` as a Pillow image (which a notebook shows), the pixels :func:`save_png` writes."""
    pixels = (image.clamp(0, 1) * 255).round().to(torch.uint8)
    return Image.fromarray(np.ascontiguousarray(rearrange(pixels, "c h w -> h w c").cpu().numpy()))


def save_png(image: Tensor, path: str | os.PathLike) -> Path:
    """Write ``image: (3, H, W)`` in ``[0, 1]`` to ``path`` atomically (a temp file, then rename)."""
    return write_atomically(path, lambda file: to_pil(image).save(file, format="PNG"))


def image_bytes(image: Tensor, format: str = "PNG", **options: Any) -> bytes:  # noqa: A002 (Pillow's name)
    """``image: (3, H, W)`` in ``[0, 1]`` as the bytes of a PNG file, the pixels :func:`save_png`
    writes; or of another ``format`` of Pillow's, with its ``options`` (``"JPEG"``, ``quality=90``)."""
    buffer = io.BytesIO()
    to_pil(image).save(buffer, format=format, **options)
    return buffer.getvalue()
