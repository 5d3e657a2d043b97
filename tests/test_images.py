"""Pictures of parts and atomic PNG files."""

from __future__ import annotations

import os

import pytest
import torch
from PIL import Image

from panda_lightning import images
from panda_lightning.images import part_colours, part_masks, parts_grid, refinement_grid, save_png


def test_part_masks_are_scaled_upsampled_parts():
    parts = torch.zeros(4, 2)
    parts[0, 0], parts[3, 1] = 2.0, 0.5  # a 2x2 grid: part 0 top-left, part 1 bottom-right
    masks = part_masks(parts, 2, 2, (4, 4))
    assert masks.shape == (2, 4, 4)
    assert masks[0, 0, 0] == 1 and masks[0, 3, 3] == 0
    assert masks[1, 3, 3] == 1 and masks[1, 0, 0] == 0
    # Each sample's own parts: sample 1 has them the other way round.
    per_sample = part_masks(torch.stack([parts, parts.flip(1)]), 2, 2, (4, 4))
    assert per_sample.shape == (2, 2, 4, 4)
    assert torch.equal(per_sample[0], masks) and torch.equal(per_sample[1], masks.flip(0))


def test_refinement_grid_colours_each_sample_by_its_own_parts():
    images = torch.full((2, 3, 4, 4), 0.5)
    left, right = torch.zeros(4, 2), torch.zeros(4, 2)  # 2x2 layer: part 0 left column, part 1 right
    left[[0, 2], 0], left[[1, 3], 1] = 1, 1
    right[:, 0], right[:, 1] = left[:, 1], left[:, 0]
    grid = refinement_grid(images, [left, torch.stack([left, right])], 2, 2)
    assert grid.shape == (3, 3 * (2 + 4 + 2), 2 * (2 + 4 + 2))  # 3 rows, 2 columns of padded cells
    cell = lambda row, column: grid[:, row * 8 + 2 : row * 8 + 6, column * 8 + 2 : column * 8 + 6]  # noqa: E731
    assert torch.equal(cell(1, 0), cell(1, 1))  # global parts: the same colours on both samples
    assert torch.equal(cell(2, 0), cell(1, 0)) and torch.equal(cell(2, 1), cell(1, 1).flip(-1))


def test_parts_grid_has_a_row_per_image_and_a_column_per_part():
    grid = parts_grid(torch.rand(3, 3, 8, 8), torch.rand(16, 5), 4, 4)
    assert grid.shape == (3, 3 * 12, (2 + 5) * 12)
    assert 0 <= grid.min() and grid.max() <= 1


def test_part_colours_are_distinct():
    colours = part_colours(8)
    assert colours.shape == (8, 3) and len({tuple(c.tolist()) for c in colours}) == 8


def test_save_png_round_trips_and_leaves_no_temporary_file(tmp_path):
    image = torch.rand(3, 5, 7)
    path = save_png(image, tmp_path / "sub" / "picture.png")
    with Image.open(path) as picture:
        assert picture.size == (7, 5)
        pixels = torch.tensor(list(picture.getdata()), dtype=torch.float32).T.reshape(3, 5, 7)
    torch.testing.assert_close(pixels / 255, image, atol=1 / 255, rtol=0)
    assert os.listdir(path.parent) == ["picture.png"]


def test_a_failed_write_keeps_the_previous_file(tmp_path, monkeypatch):
    path = save_png(torch.zeros(3, 2, 2), tmp_path / "picture.png")
    before = path.read_bytes()

    def broken_save(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(images.Image.Image, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_png(torch.ones(3, 2, 2), path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["picture.png"]
