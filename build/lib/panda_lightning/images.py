"""Pictures of parts: overlays on generated images, and atomic PNG files."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from PIL import Image
from torch import Tensor

from panda_lightning.functional.editing import part_mask


def to_unit_range(images: Tensor) -> Tensor:
    """Generator output in ``[-1, 1]`` to ``[0, 1]``."""
    return images.add(1).div(2).clamp(0, 1)


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


def parts_grid(images: Tensor, parts: Tensor, height: int, width: int) -> Tensor:
    """A picture ``(3, H_grid, W_grid)`` in ``[0, 1]``: one row per image; columns are the image,
    all parts (each pixel in the colour of its strongest part), then each part painted in its
    colour over the image in grey, as strong as the part is there.

    Args:
        images: ``(N, 3, H_img, W_img)`` in ``[0, 1]``.
        parts: ``(S, R_S)`` with ``S = height * width``.
    """
    masks = part_masks(parts.float().cpu(), height, width, images.shape[-2:])  # (R, H, W)
    colours = part_colours(masks.shape[0])
    grey = images.mean(dim=1, keepdim=True).expand_as(images)
    columns = [images, _segmentation_over(images, masks)]
    columns += [grey * (1 - 0.7 * mask) + 0.7 * mask * colour.view(3, 1, 1) for mask, colour in zip(masks[:, None], colours)]
    return tile(torch.stack(columns, dim=1))


def refinement_grid(images: Tensor, parts: Sequence[Tensor], height: int, width: int) -> Tensor:
    """The layout of the paper's Fig. 8, ``(3, H_grid, W_grid)``: one column per image; the images,
    then a row of parts over them for each of ``parts`` (global ``(S, R_S)`` or refined
    ``(N, S, R_S)``), each pixel in the colour of its strongest part."""
    rows = [images] + [segmentation_overlay(images, each, height, width) for each in parts]
    return tile(torch.stack(rows))


def saliency_grid(images: Tensor, saliency: Tensor, located: Tensor | None = None) -> Tensor:
    """A picture ``(3, H_grid, W_grid)``: one row per image; the image, then for each appearance
    its saliency map (grey at 0, scaled by the appearance's largest magnitude in these images)
    and, given ``located``, the image lit where the appearance is localised.

    Args:
        images: ``(N, 3, H_img, W_img)`` in ``[0, 1]``.
        saliency: ``(N, K, h, w)`` from :func:`panda_lightning.functional.editing.saliency_maps`.
        located: ``(N, K, h, w)`` booleans from :func:`panda_lightning.functional.editing.localise`.
    """
    size = images.shape[-2:]
    scale = saliency.abs().amax(dim=(0, 2, 3), keepdim=True).clamp_min(torch.finfo(saliency.dtype).tiny)
    grey = F.interpolate((saliency / scale + 1) / 2, size=size, mode="nearest")
    lit = None if located is None else F.interpolate(located.float(), size=size, mode="nearest")
    columns = [images]
    for k in range(saliency.shape[1]):
        columns.append(grey[:, k : k + 1].expand_as(images))
        if lit is not None:
            columns.append(images * (0.2 + 0.8 * lit[:, k : k + 1]))
    return tile(torch.stack(columns, dim=1))


def load_mask(path: str | os.PathLike) -> Tensor:
    """A hand-drawn mask from an image file, white = 1: ``(H_file, W_file)`` in ``[0, 1]``."""
    try:
        with Image.open(path) as picture:
            grey = np.asarray(picture.convert("L"), dtype=np.float32) / 255
    except (FileNotFoundError, OSError) as error:
        raise ValueError(f"mask {str(path)!r} cannot be read as an image: {error}") from error
    return torch.from_numpy(grey)


def tile(cells: Tensor, padding: int = 2) -> Tensor:
    """Cells ``(rows, cols, 3, H, W)`` into one ``(3, H_grid, W_grid)`` picture on white."""
    cells = F.pad(cells, (padding,) * 4, value=1.0)
    return rearrange(cells, "r c ch h w -> ch (r h) (c w)")


def save_png(image: Tensor, path: str | os.PathLike) -> Path:
    """Write ``image: (3, H, W)`` in ``[0, 1]`` to ``path`` atomically (a temp file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = (image.clamp(0, 1) * 255).round().to(torch.uint8)
    array = np.ascontiguousarray(rearrange(pixels, "c h w -> h w c").cpu().numpy())
    with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".png.tmp", delete=False) as file:
        try:
            Image.fromarray(array).save(file, format="PNG")
        except BaseException:
            os.unlink(file.name)
            raise
    os.replace(file.name, path)
    return path
