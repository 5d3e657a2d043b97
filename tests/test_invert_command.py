"""``panda invert`` and ``panda edit --image``: a real photo end to end from the command line, and
every bad input named in one line (exit status 2), with no file written where none was asked for."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from panda_lightning.cli import run
from panda_lightning.photos import Box, load_photo

from test_decoding import png_declaring
from test_photos import ASTRONAUT, astronaut_jpeg

pytestmark = pytest.mark.slow

QUICK = ["--settings.starts", "2", "--settings.start_steps", "2", "--settings.latent_steps", "3", "--settings.layer_steps", "3"]


@pytest.fixture(autouse=True)
def _no_pytest_argv(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["panda"])


def panda(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(Path(sys.executable).parent / "panda"), *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_a_photo_inverted_then_edited_at_its_own_size(converged, tmp_path, monkeypatch):
    checkpoint = str(converged / "checkpoints" / "last.ckpt")
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "me.jpg").write_bytes(astronaut_jpeg())
    before = sorted(photos.iterdir())
    monkeypatch.chdir(tmp_path)
    run(["invert", "--ckpt_path", checkpoint, "--image", str(photos / "me.jpg"), "--box", "135,5,190", "--output", "out"])
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == ["me.inversion.pt", "me.parts.png", "me.reconstruction.png"]
    assert sorted(photos.iterdir()) == before  # nothing written beside the photo
    with Image.open(tmp_path / "out" / "me.reconstruction.png") as picture:
        assert picture.size == (64, 64)

    run(["edit", "--ckpt_path", checkpoint, "--image", str(photos / "me.jpg"), "--inversion", "out/me.inversion.pt",
         "--edits", "[[7, 1, 3.0]]", "--layout", "edited", "--output", "me-edited.png"])
    photo, edited = load_photo(photos / "me.jpg"), load_photo(tmp_path / "me-edited.png")
    assert edited.shape == photo.shape == (3, 512, 512)
    box = Box(135, 5, 190)
    inside = torch.zeros(512, 512, dtype=torch.bool)
    inside[box.y : box.y + box.size, box.x : box.x + box.size] = True
    change = (edited - photo).abs().sum(0)
    assert change[~inside].max() == 0 and change[inside].mean() > 0.01  # the photo moved in its box alone
    with Image.open(tmp_path / "me-edited.generator.png") as picture:  # the edited generator image, beside it
        assert picture.size == (64, 64)
    run(["rewrite", "--ckpt_path", checkpoint, "--image", str(photos / "me.jpg"), "--inversion", "out/me.inversion.pt",
         "--source", "1", "--target", "4", "--output", "rows.png"])
    with Image.open(tmp_path / "rows.png") as picture:  # original | edited | difference, at the photo's size
        assert picture.width >= 3 * 512 and picture.height >= 512


def test_a_folder_with_one_bad_photo_among_good_ones(converged, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    portrait = Image.open(ASTRONAUT)
    portrait.convert("L").resize((128, 128)).save(photos / "grey.png")  # converted, not refused
    portrait.convert("RGBA").resize((96, 96)).save(photos / "clear.png")
    (photos / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a JPEG")
    (photos / "notes.txt").write_text("not a photo: left alone")
    result = panda("invert", "--ckpt_path", str(converged / "checkpoints" / "last.ckpt"), "--image", str(photos),
                   "--output", str(tmp_path / "out"), *QUICK, cwd=tmp_path)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert result.returncode == 2 and len(errors) == 1, result.stderr[-2000:]
    assert errors[0].startswith("error: 1 of 3 photos not inverted (the others were): broken.jpg: photo '")
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == [
        "clear.inversion.pt", "clear.parts.png", "clear.reconstruction.png", "grey.inversion.pt", "grey.parts.png", "grey.reconstruction.png",
    ]


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_each_bad_input_is_named_and_writes_nothing(converged, tmp_path, monkeypatch):
    checkpoint = str(converged / "checkpoints" / "last.ckpt")
    (tmp_path / "text.png").write_text("not an image")
    (tmp_path / "bomb.png").write_bytes(png_declaring(100_000, 100_000))
    whole = (ASTRONAUT).read_bytes()
    (tmp_path / "cut.png").write_bytes(whole[: len(whole) // 3])
    cases = {
        "not an image": (["--image", "text.png"], r"photo '.*text\.png' is not a PNG or JPEG image\."),
        "truncated": (["--image", "cut.png"], r"photo '.*cut\.png' cannot be (decoded|read) as a PNG or JPEG image"),
        "bomb": (["--image", "bomb.png"], r"photo '.*bomb\.png' declares more than \d+ pixels; at most 50000000 pixels are accepted\."),
        "missing": (["--image", "missing.png"], r"image='missing\.png' is neither a photo nor a folder of photos\."),
        "box outside": (["--image", str(ASTRONAUT), "--box", "400,0,200"], r"box=400,0,200 reaches \(600, 200\), outside the photo of 512 x 512 pixels"),
        "box too small": (["--image", str(ASTRONAUT), "--box", "0,0,20"], r"box=0,0,20 is 20 pixels a side; it must be at least 32\."),
        "box malformed": (["--image", str(ASTRONAUT), "--box", "1,2"], r"box='1,2' must be three whole numbers of pixels"),
    }
    monkeypatch.chdir(tmp_path)
    for name, (args, message) in cases.items():  # (the command line makes each one line: the folder's test)
        with pytest.raises((ValueError, FileNotFoundError), match=message):
            run(["invert", "--ckpt_path", checkpoint, *args, "--output", "out", *QUICK])
    assert not (tmp_path / "out").exists()
    with pytest.raises(FileNotFoundError, match=r"inversion='astronaut\.inversion\.pt' is not a file: run panda invert --image"):
        run(["edit", "--ckpt_path", checkpoint, "--image", str(ASTRONAUT), "--edits", "[[0, 1, 1.0]]"])
    assert not (tmp_path / "edit.png").exists()
