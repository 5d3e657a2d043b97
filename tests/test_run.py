"""``load_run``: a fitted run from Python, whose pictures are those the fit, the ``panda`` command
and the editor make of the same request, and whose mistakes are named in one message."""

from __future__ import annotations

import re
import shutil
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from panda_lightning import GeneratorActivations, PandA, Run, load_run
from panda_lightning.app import EditRequest
from panda_lightning.cli import run as panda
from panda_lightning.generators import PhotoFaceDCGAN
from panda_lightning.images import mask_png, to_pil
from panda_lightning.inversion import InversionSettings
from panda_lightning.loading import CheckpointError
from panda_lightning.photos import Box, load_photo

from test_photos import ASTRONAUT

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _no_pytest_argv(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["panda"])  # panda(args) is then the whole command line


@pytest.fixture(scope="module")
def loaded(converged) -> Run:
    return load_run(converged)


def png_pixels(path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def shown(picture: torch.Tensor) -> np.ndarray:
    """The pixels of a picture as a PNG of it holds them."""
    return np.asarray(to_pil(picture))


def test_a_loaded_run_draws_the_pictures_its_fit_drew_at_its_end(converged, loaded):
    printed = (converged.parents[2] / "output.txt").read_text()
    ended_at = int(re.search(r"converged at step (\d+)", printed).group(1))
    # last.ckpt holds the last step's factors, not those of the last periodic save before it
    assert torch.load(converged / "checkpoints" / "last.ckpt", weights_only=False)["global_step"] == ended_at
    assert ended_at % 100 != 0  # (else the periodic save would have written them anyway)
    pictures = loaded.pictures()
    assert sorted(pictures) == ["edits", "parts", "refined_parts", "saliency"]
    for tag, picture in pictures.items():
        np.testing.assert_array_equal(shown(picture), png_pixels(converged / f"{tag}.png"), err_msg=tag)


def test_a_run_folder_and_its_checkpoint_with_its_data_load_the_same_run(converged, loaded):
    data = GeneratorActivations(PhotoFaceDCGAN(), layer="main.8", batch_size=64)
    again = load_run(converged / "checkpoints" / "last.ckpt", data=data, device="cpu")
    assert torch.equal(again.parts, loaded.parts) and torch.equal(again.appearances, loaded.appearances)
    assert again.generator is data.generator and again.model.device.type == "cpu"


# The same request to the command (less --ckpt_path and --output) and to the run; a mask file is mask.png.
SAMPLES = ["--num_samples", "2", "--seed", "3"]
REQUESTS = {
    "edit part and mask": (
        ["edit", "--edits", '[[7, 2, -1.5], ["mask.png", 5, 3.0]]', *SAMPLES],
        lambda run: run.edit([[7, 2, -1.5], ["mask.png", 5, 3.0]], num_samples=2, seed=3),
    ),
    "edit refined part, edited alone": (
        ["edit", "--edits", "[[0, 1, 2.5]]", "--refine", "mutual_knn", "--layout", "edited", "--num_samples", "1", "--seed", "3"],
        lambda run: run.edit([[0, 1, 2.5]], num_samples=1, seed=3, refine="mutual_knn", layout="edited")[0],
    ),
    "remove": (["remove", "--where", "6", *SAMPLES], lambda run: run.remove(6, num_samples=2, seed=3)),
    "rewrite": (["rewrite", "--source", "1", "--target", "4", *SAMPLES], lambda run: run.rewrite(1, 4, num_samples=2, seed=3)),
    "saliency": (
        ["saliency", "--appearances", "[0, 3]", "--threshold_samples", "128", *SAMPLES],
        lambda run: run.saliency([0, 3], num_samples=2, threshold_samples=128, seed=3),
    ),
    "rank": (
        ["rank", "--appearance", "2", "--part", "7", "--num_samples", "64", "--show", "3"],
        lambda run: run.rank(2, part=7, num_samples=64, show=3),
    ),
    "refine": (["refine", "--steps", "5", *SAMPLES], lambda run: run.refine(steps=5, num_samples=2, seed=3)),
}


@pytest.mark.parametrize("request_name", list(REQUESTS))
def test_a_run_and_the_command_give_the_same_picture(converged, loaded, tmp_path, monkeypatch, request_name):
    command, method = REQUESTS[request_name]
    mask = torch.zeros(64, 64)
    mask[20:36, 12:30] = 1
    (tmp_path / "mask.png").write_bytes(mask_png(mask))
    monkeypatch.chdir(tmp_path)
    panda([*command, "--ckpt_path", str(converged / "checkpoints" / "last.ckpt"), "--output", "out.png"])
    np.testing.assert_array_equal(shown(method(loaded)), png_pixels(tmp_path / "out.png"))


def test_a_run_and_the_editor_give_the_same_edit(loaded, editor):
    part = editor.part_at(5, "global", 32, 32)
    for request in [EditRequest(5, part=part, appearance=3, alpha=2.5),
                    EditRequest(5, action="remove", part=part, parts="full"),
                    EditRequest(5, action="rewrite", source=1, appearance=4, alpha=0.8)]:
        edited, _ = editor.edit(request)
        if request.action == "edit":
            ours = loaded.edit([[part, 3, 2.5]], num_samples=1, seed=5, layout="edited")
        elif request.action == "remove":
            ours = loaded.remove(part, refine="full", num_samples=1, seed=5, layout="edited")
        else:
            ours = loaded.rewrite(1, 4, 0.8, num_samples=1, seed=5, layout="edited")
        np.testing.assert_array_equal(shown(ours[0]), shown(edited), err_msg=request.action)


def test_a_photo_inverted_from_python_edits_as_the_command_does(converged, loaded, tmp_path, monkeypatch):
    quick = InversionSettings(starts=2, start_steps=2, latent_steps=3, layer_steps=3)
    photo = load_photo(ASTRONAUT)
    inversion = loaded.invert(photo, "135,5,190", quick)
    assert inversion.box == Box(135, 5, 190) and inversion.photo_size == (512, 512)
    inversion.save(tmp_path / "astronaut.inversion.pt")
    shutil.copy(ASTRONAUT, tmp_path / "astronaut.png")
    monkeypatch.chdir(tmp_path)
    panda(["edit", "--ckpt_path", str(converged / "checkpoints" / "last.ckpt"), "--image", "astronaut.png",
           "--edits", "[[7, 2, -1.5]]", "--refine", "full", "--layout", "edited", "--output", "edited.png"])
    ours = loaded.edit([[7, 2, -1.5]], image=photo, inversion=inversion, refine="full", layout="edited")
    assert ours.shape == (1, 3, 512, 512)
    np.testing.assert_array_equal(shown(ours[0]), png_pixels(tmp_path / "edited.png"))
    # the file is read as the command reads it: beside the working directory, by the photo's name
    np.testing.assert_array_equal(shown(loaded.edit([[7, 2, -1.5]], image="astronaut.png", refine="full", layout="edited")[0]),
                                  png_pixels(tmp_path / "edited.png"))


def test_each_mistake_in_asking_a_run_is_named(loaded):
    with pytest.raises(ValueError, match=r"layout='grid' must be one of 'rows', 'edited'"):
        loaded.edit([[0, 1, 1.0]], layout="grid")
    with pytest.raises(ValueError, match=r"inversion='me.inversion.pt' is given without the photo it was made of"):
        loaded.edit([[0, 1, 1.0]], inversion="me.inversion.pt")
    with pytest.raises(ValueError, match=r"image is given as pixels without its inversion"):
        loaded.remove(0, image=load_photo(ASTRONAUT))
    with pytest.raises(ValueError, match=r"part=8 must be an integer from 0 to 7 \(an index into the 8 parts\)"):
        loaded.rank(2, part=8)


def test_each_mistake_in_loading_a_run_is_named(converged, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"path='.*nowhere' is neither a run's folder nor a checkpoint"):
        load_run(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match=r"is a folder of runs: pass one of them, such as '.*version_0' \(the newest\)"):
        load_run(converged.parent)
    bare = tmp_path / "bare"
    shutil.copytree(converged / "checkpoints", bare / "checkpoints")
    with pytest.raises(FileNotFoundError, match=r"no config.yaml in the run folder '.*bare' .* pass config=.*or data=GeneratorActivations"):
        load_run(bare)
    (bare / "checkpoints" / "last.ckpt").rename(bare / "checkpoints" / "step=7.ckpt")
    with pytest.raises(FileNotFoundError, match=r"has no checkpoints/last.ckpt: pass one of \['.*step=7.ckpt'\]"):
        load_run(bare)
    (tmp_path / "notes.ckpt").write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match=r"path='.*notes.ckpt' is not a checkpoint written by `panda fit`"):
        load_run(tmp_path / "notes.ckpt", data=object())
    other_layer = GeneratorActivations(PhotoFaceDCGAN(), layer="main.5", batch_size=8)
    with pytest.raises(ValueError, match=r"holds factors of layer 'main.8' with activations \(128, 16, 16\), but .* layer 'main.5' gives \(256, 8, 8\)"):
        load_run(converged, data=other_layer)
    model = PandA(feature_shape=(256, 8, 8), layer="main.5")
    with pytest.raises(ValueError, match=r"model holds factors of layer 'main.5' .* layer 'main.8' gives \(128, 16, 16\)"):
        Run(model, GeneratorActivations(PhotoFaceDCGAN(), layer="main.8", batch_size=8))
