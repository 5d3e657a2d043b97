"""Pictures of parts and atomic PNG files."""

from __future__ import annotations

import os

import pytest
import torch
import torch.nn.functional as F
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
    # 3 rows, 2 columns of cells enlarged from 4 to 128 px, with 2 px of padding around each
    assert grid.shape == (3, 3 * (2 + 128 + 2), 2 * (2 + 128 + 2))
    cell = lambda row, column: grid[:, row * 132 + 2 : row * 132 + 130, column * 132 + 2 : column * 132 + 130]  # noqa: E731
    assert torch.equal(cell(1, 0), cell(1, 1))  # global parts: the same colours on both samples
    assert torch.equal(cell(2, 0), cell(1, 0)) and torch.equal(cell(2, 1), cell(1, 1).flip(-1))


def test_parts_grid_has_a_row_per_image_and_a_column_per_part():
    grid = parts_grid(torch.rand(3, 3, 8, 8), torch.rand(16, 5), 4, 4)
    assert grid.shape == (3, images.HEADER_HEIGHT + 3 * 132, (2 + 5) * 132)  # a header of labels, cells of 128 px
    assert 0 <= grid.min() and grid.max() <= 1
    # The legend: each part's label is drawn on its colour.
    for k, colour in enumerate(part_colours(5)):
        header = grid[:, 2 : images.HEADER_HEIGHT - 2, (2 + k) * 132 + 4 : (2 + k) * 132 + 20]  # left of the text
        assert torch.allclose(header, colour.view(3, 1, 1).expand_as(header), atol=1 / 255)


def test_tile_enlarges_small_cells_and_draws_each_label_in_its_strip():
    cells = torch.rand(2, 3, 3, 64, 64)
    plain = images.tile(cells)
    assert plain.shape == (3, 2 * 132, 3 * 132)  # 64 px enlarged twice, each pixel a 2x2 square
    torch.testing.assert_close(plain[:, 2:130:2, 2:130:2], cells[0, 0])
    torch.testing.assert_close(plain[:, 3:130:2, 3:130:2], cells[0, 0])

    rows, columns = ["part 0", "part 1"], ["unedited", "appearance 3", "appearance 4"]
    red = torch.tensor([1.0, 0.0, 0.0])
    labelled = images.tile(cells, rows=rows, columns=columns, column_colours=[None, red, None])
    left, top = images.label_width(rows), images.HEADER_HEIGHT
    assert labelled.shape == (3, top + 2 * 132, left + 3 * 132)
    torch.testing.assert_close(labelled[:, top:, left:], plain, atol=1 / 255, rtol=0)  # the cells, untouched
    ink = lambda area: (area.mean(dim=0) < 0.5).sum().item()  # dark pixels: text  # noqa: E731
    row_strips = [labelled[:, top + i * 132 : top + (i + 1) * 132, :left] for i in range(2)]
    header_cells = [labelled[:, :top, left + j * 132 : left + (j + 1) * 132] for j in range(3)]
    assert all(ink(strip) > 10 for strip in row_strips) and ink(labelled[:, :top, :left]) == 0
    assert ink(header_cells[0]) > 10 and ink(header_cells[2]) > ink(header_cells[0])  # longer text, more ink
    assert not torch.equal(row_strips[0], row_strips[1])  # "part 0" and "part 1" differ
    assert (header_cells[1][0] > 0.9).float().mean() > 0.9  # on red: the legend's colour
    with pytest.raises(ValueError, match="rows has 1 labels for 2 rows of cells"):
        images.tile(cells, rows=["part 0"])


def test_tile_shrinks_large_cells_by_area_to_the_largest_size():
    cells = torch.rand(1, 2, 3, 1024, 512)  # a 1024 px generator's images, and one half as wide
    grid = images.tile(cells)
    assert grid.shape == (3, 2 + 256 + 2, 2 * (2 + 128 + 2))  # the longer side at 256 px
    torch.testing.assert_close(grid[:, 2:258, 2:130], F.avg_pool2d(cells[0, 0], 4))  # each pixel a 4x4 mean
    assert images.tile(cells, largest=None).shape == (3, 2 + 1024 + 2, 2 * (2 + 512 + 2))  # at full size
    small = torch.rand(2, 3, 200, 100)
    assert images.at_most(small) is small  # already small enough: as it is


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
