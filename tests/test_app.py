"""``panda app``: the editor's answers, its agreement with the exported commands, its server, and
(in ``test_app_browser.py``) the page in a real browser."""

from __future__ import annotations

import base64
import random
import re
import shlex
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch

from panda_lightning import PandA
from panda_lightning.app import EditRequest, Editor
from panda_lightning.app.api import EditorAPI, mask_from_data_url
from panda_lightning.cli import run
from panda_lightning.functional.editing import appearance_scores
from panda_lightning.functional.factorization import channel_scatter, hosvd_appearances, unfold
from panda_lightning.generators import FrozenGenerator, StyleGAN2
from panda_lightning.generators.adapters.stylegan import CONFIG_F
from panda_lightning.images import load_mask, mask_png, part_colours, part_masks

from app_support import Served, canvas_data_url, file_pixels, pixels, post, serving, square_mask
from conftest import Exploit


@pytest.fixture(autouse=True)
def _no_pytest_argv(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["panda"])  # run(args) is then the whole command line


@pytest.fixture
def served(editor) -> Iterator[Served]:
    with serving(editor) as server:
        yield server


def centre_part(editor: Editor, seed: int) -> int:
    return editor.part_at(seed, "global", 32, 32)


# -- the editor -------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    "request_of",
    [
        lambda part, mask: {"part": part, "appearance": 3, "alpha": 2.5},
        lambda part, mask: {"mask": mask, "appearance": 5, "alpha": -1.7},
        lambda part, mask: {"part": part, "parts": "mutual_knn", "appearance": 1, "alpha": 3.0},
        lambda part, mask: {"action": "remove", "part": part},
        lambda part, mask: {"action": "remove", "mask": mask, "parts": "full"},
        lambda part, mask: {"action": "rewrite", "source": 1, "appearance": 4, "alpha": 0.8},
    ],
    ids=["edit part", "edit mask", "edit refined part", "remove part", "remove mask", "rewrite"],
)
def test_the_app_and_the_command_it_exports_make_the_same_image(editor, tmp_path, monkeypatch, request_of):
    payload = {"seed": 5, **request_of(centre_part(editor, 5), canvas_data_url(square_mask()))}
    answer = EditorAPI(editor).edit(payload)
    monkeypatch.chdir(tmp_path)  # where the user saved the mask and runs the command
    if "mask" in answer:  # saved under the name the page gives
        (tmp_path / answer["mask_file"]).write_bytes(base64.b64decode(answer["mask"].split(",", 1)[1]))
    command = shlex.split(answer["command"])
    assert command[0] == "panda" and command[-2:] == ["--output", answer["output"]]
    run(command[1:])
    (written,) = tmp_path.glob("*seed5.png")
    assert written.name == answer["output"] == f"{payload.get('action', 'edit')}-seed5.png"
    np.testing.assert_array_equal(file_pixels(written), pixels(answer["edited"]))  # the whole file is the page's image
    assert answer["options"]["seed"] == 5


@pytest.mark.slow
def test_an_edit_changes_its_part_or_mask_and_hardly_elsewhere(editor):
    original = editor.sample(2).image
    part = centre_part(editor, 2)
    segment = part_masks(editor.parts(2).float(), editor.height, editor.width, (64, 64)).argmax(0) == part
    (appearance, _), *_ = editor.ranked_appearances(EditRequest(seed=2, part=part))
    edited, _ = editor.edit(EditRequest(seed=2, part=part, appearance=appearance, alpha=3.0))
    change = (edited - original).abs().sum(0)
    assert change[segment].mean() > 3 * change[~segment].mean()

    mask = torch.from_numpy(square_mask()).float() / 255
    edited, _ = editor.edit(EditRequest(seed=2, mask=mask, appearance=appearance, alpha=3.0))
    change = (edited - original).abs().sum(0)
    far = torch.nn.functional.max_pool2d(mask[None, None], 17, stride=1, padding=8)[0, 0] == 0  # 8 px away
    assert change[mask > 0.5].mean() > 10 * change[far].mean()


@pytest.mark.slow
def test_a_click_picks_the_part_whose_colour_the_overlay_shows_there(editor):
    image, overlay = editor.sample(7).image, editor.overlay(7)
    colours = part_colours(editor.num_parts)
    shown = 2 * overlay - image.mean(0, keepdim=True)  # the overlay is half grey, half the part's colour
    for y, x in torch.randint(0, 64, (40, 2), generator=torch.Generator().manual_seed(0)).tolist():
        nearest = (colours - shown[:, y, x]).norm(dim=1).argmin().item()
        assert editor.part_at(7, "global", x, y) == nearest


@pytest.mark.slow
def test_the_gallery_ranks_by_the_spread_of_eq_18_scores_and_shows_each_edit(editor):
    request = EditRequest(seed=1, part=centre_part(editor, 1))
    ranked = editor.ranked_appearances(request)
    region = editor.region(request).flatten()
    Z = torch.cat(list(editor.generator.held_out_batches(128, batch_size=64)))
    A = editor.fitted.appearances.detach()
    spreads = torch.stack([
        (appearance_scores(Z, A, j, region[:, None] / region.sum())[:, 0] / A[:, j].norm()).std() for j in range(A.shape[1])
    ])
    assert [j for j, _ in ranked] == spreads.topk(editor.gallery_size).indices.tolist()
    torch.testing.assert_close(torch.tensor([s for _, s in ranked]), spreads.topk(editor.gallery_size).values)
    for appearance, _, thumbnail in editor.gallery(request)[:3]:  # what choosing it gives, at the gallery's strength
        edited, _ = editor.edit(EditRequest(seed=1, part=request.part, appearance=appearance, alpha=editor.gallery_alpha))
        torch.testing.assert_close(thumbnail, edited, rtol=0, atol=1e-5)  # (a batch of 4 may round differently)


def test_a_mask_round_trips_from_the_canvas_through_the_exported_file():
    mask = square_mask()
    from_canvas = mask_from_data_url(canvas_data_url(mask), (64, 64))
    assert torch.equal(from_canvas, torch.from_numpy(mask).float() / 255)
    assert torch.equal(load_mask(mask_png(from_canvas)), from_canvas)


# -- the server ------------------------------------------------------------------------------


@pytest.mark.slow
def test_tabs_at_once_get_the_answers_they_get_alone(editor, served):
    part = centre_part(editor, 3)
    requests = [
        {"seed": 3, "part": part, "appearance": 2, "alpha": 1.5},
        {"seed": 4, "part": 0, "appearance": 7, "alpha": -2.0, "parts": "mutual_knn"},
        {"seed": 3, "mask": canvas_data_url(square_mask()), "appearance": 2, "alpha": 1.5},
        {"seed": 9, "action": "rewrite", "source": 0, "appearance": 6, "alpha": 1.0},
        {"seed": 4, "action": "remove", "part": 1},
    ]
    alone = [post(served, "/api/edit", r)[1]["edited"] for r in requests]
    order = [i for i in range(len(requests)) for _ in range(4)]
    random.Random(0).shuffle(order)
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda i: post(served, "/api/edit", requests[i]), order))
    for i, (status, answer) in zip(order, answers):
        assert status == 200 and answer["edited"] == alone[i], i
    assert alone[0] != alone[2]  # (the requests differ)


@pytest.mark.slow
def test_bad_requests_say_what_is_wrong_and_the_server_goes_on(editor, served, monkeypatch):
    cases = [
        ({"seed": 0, "part": 8, "appearance": 0}, r"part=8 must be an integer from 0 to 7 \(an index into the 8 parts\)"),
        ({"seed": 0, "part": 0, "appearance": 0, "alpha": 1e9}, r"alpha=1000000000.0 must be a finite number from -100.0 to 100.0"),
        ({"seed": -1, "part": 0}, r"seed=-1 must be an integer from 0 to 9007199254740991"),
        ({"seed": 0, "appearance": 0}, r"action='edit' needs a region: a part, or a mask drawn on the image"),
        ({"seed": 0, "part": 0, "parts": "knn"}, r"parts='knn' must be one of 'global', 'full', 'mutual_knn'"),
        ({"seed": 0, "action": "rewrite", "appearance": 0}, r"action='rewrite' needs a source"),
        ({"seed": 0, "mask": canvas_data_url(np.zeros((10, 10), np.uint8)), "appearance": 0},
         r"mask is 10 x 10 pixels; it must be 64 x 64"),
        ({"seed": 0, "mask": "data:image/png;base64,AAAA", "appearance": 0}, r"mask is not a PNG image"),
        ({"seed": 0, "colour": "red"}, r"unknown request field\(s\) colour; the fields are"),
        (b"{not json", r"the request is not JSON"),
        (b"[1, 2]", r"the request must be a JSON object, not list"),
    ]
    for payload, message in cases:
        status, answer = post(served, "/api/edit", payload)
        assert status == 400 and re.search(message, answer["error"]), (payload, answer)

    def broken(request, **options):
        raise RuntimeError("out of memory\nwith a second line")

    monkeypatch.setattr(editor, "edit", broken)
    assert post(served, "/api/edit", {"seed": 0, "part": 0, "appearance": 0}) == (500, {"error": "RuntimeError: out of memory"})
    monkeypatch.undo()
    status, answer = post(served, "/api/edit", {"seed": 0, "part": 0, "appearance": 0})
    assert status == 200 and answer["edited"].startswith("data:image/png;base64,")


@pytest.mark.slow
def test_the_page_loads_nothing_from_elsewhere(served):
    with urllib.request.urlopen(f"{served.url}/?token={served.token}") as response:
        page, policy = response.read().decode(), response.headers["Content-Security-Policy"]
    assert policy.startswith("default-src 'self'") and "connect-src 'self'" in policy
    texts = [page]
    for name in re.findall(r'(?:src|href)="([^"]+)"', page):
        if not name.startswith("data:"):
            with urllib.request.urlopen(f"{served.url}/{name}") as response:
                texts.append(response.read().decode())
    assert len(texts) == 3  # the page, its script and its style
    assert not any(re.search(r"https?://|//[a-z]", text.replace("http-equiv", "")) for text in texts)


# -- the command ------------------------------------------------------------------------------


@pytest.mark.slow
def test_panda_app_refuses_a_bad_checkpoint_in_one_line_before_serving(fitted, tmp_path):
    truncated = tmp_path / "checkpoints" / "truncated.ckpt"
    truncated.parent.mkdir()
    truncated.write_bytes((fitted / "checkpoints" / "last.ckpt").read_bytes()[:5000])
    marker = tmp_path / "ran"
    checkpoint = torch.load(fitted / "checkpoints" / "last.ckpt", weights_only=False)
    torch.save({**checkpoint, "extra": Exploit(marker)}, tmp_path / "code.ckpt")
    panda = Path(sys.executable).parent / "panda"
    cases = {
        "code": (["--config", str(fitted / "config.yaml"), "--ckpt_path", str(tmp_path / "code.ckpt")],
                 r"was not loaded: it holds code \(it asks for (posix|os)\.system\)"),
        "no file": (["--ckpt_path", str(tmp_path / "missing.ckpt")], r"ckpt_path='.*missing\.ckpt' is not a file"),
        "no config": (["--ckpt_path", str(truncated)], r"no --config given, and no config\.yaml beside ckpt_path"),
        "truncated": (["--config", str(fitted / "config.yaml"), "--ckpt_path", str(truncated)], r"cut short"),
    }
    with ThreadPoolExecutor(max_workers=2) as pool:  # (each process mostly imports: two at a time on two cores)
        results = dict(zip(cases, pool.map(
            lambda case: subprocess.run([str(panda), "app", *case[0], "--port", "0"], capture_output=True, text=True, timeout=120),
            cases.values())))
    for name, (args, message) in cases.items():
        result = results[name]
        errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
        assert result.returncode == 2 and len(errors) == 1 and re.search(message, errors[0]), (name, result.stderr[-2000:])
        assert "serving" not in result.stdout
    assert not marker.exists()


def test_large_images_are_shown_shrunk_and_downloaded_whole():
    # StyleGAN2's shape at 1024 px, narrow: it runs no forward_from, so edits rerun it with hooks.
    synthesis = {**CONFIG_F["synthesis_kwargs"], "channel_base": 1024, "channel_max": 16}
    torch.manual_seed(0)
    generator = FrozenGenerator(StyleGAN2(architecture={**CONFIG_F, "synthesis_kwargs": synthesis}, truncation_psi=0.7), "layer5")
    # Factors as the fit starts them: A by HOSVD of held-out samples, random parts.
    model = PandA(generator.feature_shape, layer="layer5", parts_rank=4)
    scatter = sum(channel_scatter(unfold(Z)) for Z in generator.held_out_batches(16, batch_size=8))
    model.appearances.data.copy_(hosvd_appearances(scatter, generator.feature_shape[0]))
    model.activation_scale.fill_((scatter.trace() / (16 * 16 * 16)).sqrt().item())
    api = EditorAPI(Editor(model.eval(), generator, ranking_samples=8, gallery_size=2))
    shown = api.sample({"seed": 0})
    assert shown["size"] == [1024, 1024] and pixels(shown["image"]).shape == (512, 512, 3)
    request = {"seed": 0, "part": api.editor.part_at(0, "global", 700, 300), "appearance": 1, "alpha": 2.0}
    preview, whole = api.edit(request), api.edit({**request, "full": True})
    assert preview["whole"] is False and pixels(preview["edited"]).shape == (512, 512, 3)
    assert set(whole) == {"edited"} and pixels(whole["edited"]).shape == (1024, 1024, 3)
    full = torch.from_numpy(pixels(whole["edited"])).permute(2, 0, 1).float() / 255
    shrunk = torch.nn.functional.avg_pool2d(full[None], 2)[0]
    shown = torch.from_numpy(pixels(preview["edited"])).permute(2, 0, 1).float() / 255
    assert preview["edited"].startswith("data:image/jpeg") and whole["edited"].startswith("data:image/png")
    assert (shrunk - shown).abs().mean() < 2 / 255  # the preview is the whole image, shrunk (and JPEG's rounding)
    assert pixels(preview["edited"]).tobytes() != pixels(api.sample({"seed": 0})["image"]).tobytes()
