"""The ``panda`` command end to end on the bundled face generator (marked slow)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from panda_lightning import PandA
from panda_lightning.cli import run

CONFIGS = Path(__file__).parents[1] / "configs"


@pytest.fixture(autouse=True)
def _no_pytest_argv(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["panda"])  # run(args) is then the whole command line


def _fit_args(tmp_path, *extra):
    return [
        "fit", "--config", str(CONFIGS / "dcgan_faces.yaml"), "--config", str(CONFIGS / "debug.yaml"),
        "--trainer.enable_progress_bar", "false",
        "--trainer.logger.init_args.save_dir", str(tmp_path / "runs"),
        "--trainer.default_root_dir", str(tmp_path),
        *extra,
    ]


@pytest.mark.slow
def test_console_script_fit_writes_checkpoint_tensorboard_logs_and_parts_picture(tmp_path):
    panda = Path(sys.executable).parent / "panda"  # the installed console script, as a user runs it
    done = subprocess.run([str(panda), *_fit_args(tmp_path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    (log_dir,) = (tmp_path / "runs" / "dcgan_faces").glob("version_*")
    assert list(log_dir.glob("events.out.tfevents.*"))
    model = PandA.load_from_checkpoint(log_dir / "checkpoints" / "last.ckpt")
    assert model.hparams.feature_shape == (128, 16, 16)
    assert model.parts.shape == (256, 8) and (model.parts >= 0).all() and bool(model.initialised)
    # One row per sample; columns: image, all parts, and each of the 8 parts (64 px + padding).
    with Image.open(log_dir / "parts.png") as picture:
        assert picture.size == (10 * 68, 6 * 68)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(log_dir)).Reload()
    assert {"train/relative_error", "train/loss", "train/parts_orthogonality_error", "train/parts_sparsity"} <= set(
        events.Tags()["scalars"]
    )
    assert {"parts", "saliency", "edits"} <= set(events.Tags()["images"])

    # The README's Python example runs on this checkpoint as it is written.
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    example = re.search(r"From Python, with a fitted checkpoint.*?```python\n(.*?)```", readme, re.S).group(1)
    namespace: dict = {}
    exec(example.replace("runs/dcgan_faces/version_0/checkpoints/last.ckpt", str(log_dir / "checkpoints" / "last.ckpt")), namespace)
    assert namespace["edited"].shape == (8, 3, 64, 64) and namespace["scores"].shape == (8, 8)


@pytest.mark.slow
def test_console_script_help_explains_the_options():
    panda = Path(sys.executable).parent / "panda"  # the installed console script
    top = subprocess.run([str(panda), "--help"], capture_output=True, text=True, check=True).stdout
    assert "{fit}" in top and "configs/dcgan_faces.yaml" in top
    fit = subprocess.run([sys.executable, "-m", "panda_lightning.cli", "fit", "--help"], capture_output=True, text=True, check=True).stdout
    assert "the number of parts" in fit and "dotted path of the sub-module" in fit


@pytest.mark.slow
def test_config_typo_is_caught_before_fitting(tmp_path, capsys):
    with pytest.raises(SystemExit):
        run(_fit_args(tmp_path, "--model.parts_rnk", "3"))
    assert "parts_rnk" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_unknown_layer_names_the_valid_layers(tmp_path):
    with pytest.raises(ValueError, match=r"layer='main\.99'.*Valid layers: main, main\.0"):
        run(_fit_args(tmp_path, "--data.layer", "main.99"))


@pytest.mark.slow
def test_too_many_parts_says_both_numbers(tmp_path):
    with pytest.raises(ValueError, match=r"parts_rank=300 must be an integer from 1 to the number of positions H\*W=16\*16=256"):
        run(_fit_args(tmp_path, "--model.parts_rank", "300"))
