"""A photo in ``panda app``: opened, inverted in the background with its progress read and a cancel,
then edited with every control as a sample is, and the exported ``panda edit --image`` command
writes the page's download bit for bit. Bad photos are refused with a message, the server going on."""

from __future__ import annotations

import base64
import io
import re
import shlex
import sys
import time

import pytest
from PIL import Image

from panda_lightning.app.api import EditorAPI
from panda_lightning.cli import run

from app_support import canvas_data_url, file_pixels, pixels, post, serving, square_mask
from test_decoding import EPS, png_declaring
from test_photos import astronaut_jpeg

pytestmark = pytest.mark.slow


def data_url(content: bytes, kind: str = "jpeg") -> str:
    return f"data:image/{kind};base64," + base64.b64encode(content).decode()


def inverted(api: EditorAPI, payload: dict, timeout: float = 120) -> dict:
    """Start an inversion and wait for its end (polled as the page polls): the last progress."""
    job = api.photo(payload)["job"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = api.photo_progress({"job": job})
        if state["done"]:
            return state
        time.sleep(0.1)
    raise AssertionError("the inversion did not end")


@pytest.fixture(scope="module")
def api(editor) -> EditorAPI:
    return EditorAPI(editor)


@pytest.fixture(scope="module")
def photo(api) -> str:
    state = inverted(api, {"image": data_url(astronaut_jpeg()), "name": "me.jpg", "box": [135, 5, 190]})
    assert state["error"] is None and state["photo"] and set(state["stages"]) == {"latents", "layer"}
    return state["photo"]


@pytest.mark.parametrize(
    "request_of",
    [
        lambda photo: {"part": 7, "appearance": 2, "alpha": -1.5, "parts": "full"},
        lambda photo: {"mask": canvas_data_url(square_mask()), "appearance": 1, "alpha": 2.0},
        lambda photo: {"action": "remove", "part": 0},
        lambda photo: {"action": "rewrite", "source": 1, "appearance": 4, "alpha": 0.8},
    ],
    ids=["edit refined part", "edit mask", "remove", "rewrite"],
)
def test_the_photo_edited_in_the_page_and_by_its_exported_command_is_the_same(api, photo, request_of, tmp_path, monkeypatch):
    payload = {"seed": 0, "photo": photo, **request_of(photo)}
    answer = api.edit(payload)
    whole = api.edit({**payload, "full": True})["edited"]
    assert pixels(whole).shape == (512, 512, 3)  # the photo at its own size
    command = shlex.split(answer["command"])
    assert command[command.index("--image") + 1] == "me.jpg" and command[command.index("--inversion") + 1] == "me.inversion.pt"
    assert "--seed" not in command and command[-2:] == ["--output", answer["output"]]
    # As the page says: the photo, its inversion (downloaded) and any mask in the folder where the command runs.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "me.jpg").write_bytes(astronaut_jpeg())
    download = api.photo_inversion({"photo": photo})
    assert download["file"] == "me.inversion.pt"
    (tmp_path / "me.inversion.pt").write_bytes(base64.b64decode(download["inversion"].split(",", 1)[1]))
    if "mask" in answer:
        (tmp_path / answer["mask_file"]).write_bytes(base64.b64decode(answer["mask"].split(",", 1)[1]))
    monkeypatch.setattr(sys, "argv", ["panda"])
    run(command[1:])
    assert (file_pixels(tmp_path / answer["output"]) == pixels(whole)).all()
    original = pixels(api.sample({"seed": 0, "photo": photo})["photo"]["image"])
    assert original.shape == (512, 512, 3) and (pixels(whole) != original).any()


def test_the_page_shows_the_photos_box_with_its_parts_and_gallery(api, photo):
    shown = api.sample({"seed": 0, "photo": photo, "parts": "mutual_knn"})
    assert shown["size"] == [64, 64] and shown["photo"]["box"] == [135, 5, 190] and shown["photo"]["size"] == [512, 512]
    assert pixels(shown["image"]).shape == (64, 64, 3) and shown["photo"]["name"] == "me.jpg"
    part = api.part({"seed": 0, "photo": photo, "parts": "mutual_knn", "x": 32, "y": 8})["part"]
    items = api.gallery({"seed": 0, "photo": photo, "part": part, "parts": "mutual_knn"})["items"]
    assert len(items) == 8 and pixels(items[0]["image"]).shape == (64, 64, 3)


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_bad_photos_are_refused_with_a_message_and_the_server_goes_on(editor, photo):
    gif = io.BytesIO()
    Image.new("RGB", (64, 64)).save(gif, format="GIF")
    cases = [
        ({"image": data_url(gif.getvalue(), "png"), "name": "x.png"}, r"photo 'x\.png' is not a PNG or JPEG image"),
        ({"image": data_url(EPS, "jpeg"), "name": "x.jpg"}, r"photo 'x\.jpg' is not a PNG or JPEG image"),
        ({"image": data_url(png_declaring(100_000, 100_000), "png"), "name": "x.png"}, r"declares more than \d+ pixels"),
        ({"image": data_url(astronaut_jpeg())[:5000], "name": "x.jpg"}, r"photo 'x\.jpg' cannot be (decoded|read)|is not base64"),
        ({"image": "data:image/gif;base64,AAAA", "name": "x.gif"}, r"name='x\.gif' must be the photo's file name"),
        ({"image": "data:image/gif;base64,AAAA", "name": "x.png"}, r"image must be a PNG or JPEG data: URL of the photo"),
        ({"image": data_url(astronaut_jpeg()), "name": "../me.jpg"}, r"name='\.\./me\.jpg' must be the photo's file name"),
        ({"image": data_url(astronaut_jpeg()), "name": "me.jpg", "box": [400, 0, 200]}, r"box=400,0,200 reaches \(600, 200\)"),
        ({"image": data_url(astronaut_jpeg()), "name": "me.jpg", "box": [0, 0]}, r"box=\[0, 0\] must be \[x, y, size\]"),
    ]
    with serving(editor) as served:
        for payload, message in cases:
            status, answer = post(served, "/api/photo", payload)
            assert status == 400 and re.search(message, answer["error"]), (payload.get("name"), answer)
        # A photo larger than any other request is let in (up to its own limit), and inverted.
        status, answer = post(served, "/api/photo", {"image": data_url(astronaut_jpeg()), "name": "me.jpg"})
        assert status == 200 and answer["size"] == [512, 512]
        status, busy = post(served, "/api/photo", {"image": data_url(astronaut_jpeg()), "name": "me.jpg"})
        assert status == 400 and "another photo is being inverted" in busy["error"]
        status, cancelled = post(served, "/api/photo/cancel", {"job": answer["job"]})
        deadline = time.monotonic() + 60
        while not cancelled["done"] and time.monotonic() < deadline:
            time.sleep(0.1)
            status, cancelled = post(served, "/api/photo/progress", {"job": answer["job"]})
        assert cancelled["done"] and cancelled["cancelled"] and cancelled["photo"] is None
        status, unknown = post(served, "/api/edit", {"seed": 0, "photo": "not-a-photo", "part": 0, "appearance": 0})
        assert status == 400 and "photo='not-a-photo' is not a photo inverted here" in unknown["error"]
        status, edited = post(served, "/api/edit", {"seed": 0, "photo": photo, "part": 0, "appearance": 0, "alpha": 1.0})
        assert status == 200
