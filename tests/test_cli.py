"""The ``panda`` command end to end on the bundled face generator (marked slow)."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from PIL import Image

from panda_lightning import PandA
from panda_lightning.cli import run
from panda_lightning.cli.trainer import PandATrainer
from panda_lightning.images import HEADER_HEIGHT, label_width, save_png

from conftest import CONFIGS, Exploit, fit_args

CELL = 2 + 128 + 2  # a 64 px image enlarged twice, with its padding


@pytest.fixture(autouse=True)
def _no_pytest_argv(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["panda"])  # run(args) is then the whole command line


@pytest.mark.slow
def test_a_fit_starts_quietly_and_ends_saying_what_it_left_where_and_what_to_run_next(fitted, tmp_path):
    output = (fitted.parents[2] / "output.txt").read_text()
    for noise in ("Tip: For seamless cloud logging", "LeafSpec", "ckpt_path=", "Total params", "args parameter"):
        assert noise not in output, noise  # Lightning's, and nothing a user can act on
    assert "PandA: 8 parts and 128 appearances of main.8 (128 x 16 x 16), fitted until its held-out error" in output
    assert "PandA did not converge in 12 steps" in output  # our own warnings still show
    block = output[output.index("Fit done: "):].splitlines()
    assert re.fullmatch(r"Fit done: stopped at step 12 before converging, held-out relative error 0\.\d{5} .*", block[0])
    listed = dict(re.fullmatch(r"  (\w+) +(.*)", line).groups() for line in block[1:4])
    assert Path(listed["checkpoint"]) == fitted / "checkpoints" / "last.ckpt"
    names, folder = re.fullmatch(r"(.*) in (.*)", listed["pictures"]).groups()
    assert Path(folder) == fitted and all((fitted / name).is_file() for name in names.split(", "))
    assert listed["logs"] == f"tensorboard --logdir {fitted}"
    # The next command, as printed, runs.
    (command,) = [line.strip() for line in block if line.strip().startswith("panda edit ")]
    output_png = tmp_path / "next.png"
    result = _console(*shlex.split(command)[1:], "--output", str(output_png))
    assert result.returncode == 0, result.stderr[-2000:]
    assert output_png.is_file() and "Warning" not in result.stderr and "args parameter" not in result.stderr
    # The same without --config: the config is found beside the checkpoint, as quietly.
    without_config = [word for word in shlex.split(command)[1:] if word != "--config" and not word.endswith("config.yaml")]
    result = _console(*without_config, "--output", str(tmp_path / "again.png"))
    assert result.returncode == 0 and "args parameter" not in result.stderr, result.stderr[-2000:]
    assert (tmp_path / "again.png").read_bytes() == output_png.read_bytes()


@pytest.mark.slow
def test_fit_writes_checkpoint_tensorboard_logs_and_pictures(fitted):
    log_dir = fitted
    assert list(log_dir.glob("events.out.tfevents.*"))
    model = PandA.load_from_checkpoint(log_dir / "checkpoints" / "last.ckpt")
    assert model.hparams.feature_shape == (128, 16, 16) and model.hparams.layer == "main.8"
    assert model.parts.shape == (256, 8) and (model.parts >= 0).all() and bool(model.initialised)
    # One row per sample; columns: image, all parts, and each of the 8 parts (64 px + padding).
    with Image.open(log_dir / "parts.png") as picture:
        assert picture.size == (10 * CELL, HEADER_HEIGHT + 6 * CELL)
    assert (log_dir / "saliency.png").is_file() and (log_dir / "edits.png").is_file()
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(log_dir)).Reload()
    assert {"train/relative_error", "train/loss", "train/parts_orthogonality_error", "train/parts_sparsity"} <= set(
        events.Tags()["scalars"]
    )
    assert {"parts", "saliency", "edits", "refined_parts"} <= set(events.Tags()["images"])
    with Image.open(log_dir / "refined_parts.png") as picture:  # Fig. 8: samples, global, full, mutual kNN
        assert picture.size == (label_width(["refined: mutual_knn"]) + 4 * CELL, 4 * CELL)


@pytest.mark.slow
def test_readme_python_example_runs_on_a_fitted_checkpoint(fitted):
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    example = re.search(r"## From Python and notebooks\n+```python\n(.*?)```", readme, re.S).group(1)
    namespace: dict = {}
    exec(example.replace("runs/panda/version_0", str(fitted)), namespace)
    assert namespace["picture"].shape == (3, HEADER_HEIGHT + 6 * CELL, 3 * CELL)  # panda edit's 6 samples
    assert namespace["run"].generator.layer == "main.8"


def _picture_args(fitted, subcommand, *extra):
    checkpoint = str(fitted / "checkpoints" / "last.ckpt")
    return [subcommand, "--config", str(fitted / "config.yaml"), "--ckpt_path", checkpoint, *extra]


@pytest.mark.slow
@pytest.mark.parametrize(
    "subcommand, extra, size",
    [
        ("edit", ["--edits", "[[0, 5, 3.0], [2, 1, -2.0]]", "--num_samples", "2"], (3 * CELL, HEADER_HEIGHT + 2 * CELL)),
        ("rewrite", ["--source", "1", "--target", "4", "--num_samples", "3"], (3 * CELL, HEADER_HEIGHT + 3 * CELL)),
        ("remove", ["--where", "0", "--num_samples", "2"], (3 * CELL, HEADER_HEIGHT + 2 * CELL)),
        ("remove", ["--where", "0", "--appearance", "2", "--num_samples", "2"], (3 * CELL, HEADER_HEIGHT + 2 * CELL)),
        ("saliency", ["--appearances", "[0, 3]", "--num_samples", "2", "--threshold_samples", "64"], (5 * CELL, HEADER_HEIGHT + 2 * CELL)),
        ("rank", ["--appearance", "2", "--part", "0", "--num_samples", "32", "--show", "4"], (label_width(["highest"]) + 4 * CELL, 2 * CELL)),
        ("refine", ["--num_samples", "3", "--steps", "20"], (label_width(["refined: mutual_knn"]) + 3 * CELL, 4 * CELL)),  # Fig. 8: 4 rows
        ("edit", ["--edits", "[[0, 5, 3.0]]", "--num_samples", "2", "--refine", "mutual_knn"], (3 * CELL, HEADER_HEIGHT + 2 * CELL)),
    ],
)
def test_picture_subcommands_write_their_png(fitted, tmp_path, subcommand, extra, size):
    output = tmp_path / f"{subcommand}.png"
    run(_picture_args(fitted, subcommand, *extra, "--output", str(output)))
    with Image.open(output) as picture:
        assert picture.size == size


@pytest.mark.slow
def test_an_edit_at_a_hand_drawn_mask_changes_the_image_there(fitted, tmp_path):
    mask = torch.zeros(64, 64)
    mask[8:24, 40:56] = 1  # a square at the top right
    save_png(mask.expand(3, -1, -1), tmp_path / "mask.png")
    output = tmp_path / "edit.png"
    edits = f"[['{tmp_path / 'mask.png'}', 3, 5.0]]"
    run(_picture_args(fitted, "edit", "--edits", edits, "--num_samples", "2", "--output", str(output)))
    with Image.open(output) as picture:  # the third column of the first row: the difference, enlarged twice
        pixels = torch.tensor(np.asarray(picture.convert("L")), dtype=torch.float32)
        difference = pixels[HEADER_HEIGHT + 2 : HEADER_HEIGHT + 130 : 2, 2 * CELL + 2 : 2 * CELL + 130 : 2]
    inside = difference[8:24, 40:56].mean()
    outside = torch.cat([difference[:, :32].flatten(), difference[32:, :].flatten()]).mean()
    assert inside > 5 * outside


@pytest.mark.slow
@pytest.mark.parametrize(
    "extra, message",
    [
        (
            ["--data.layer", "main.11", "--edits", "[[0, 1, 1.0]]"],
            r"holds factors of layer 'main\.8' with activations \(128, 16, 16\), but the configured "
            r"generator's layer 'main\.11' gives \(64, 32, 32\)",
        ),
        (["--edits", "[[0, 500, 1.0]]"], r"appearance=500 must be an integer from 0 to 127 \(an index into the 128 appearances\)"),
        (["--edits", "[[9, 0, 1.0]]"], r"part=9 must be an integer from 0 to 7 \(an index into the 8 parts\)"),
        (["--edits", "[['missing.png', 0, 1.0]]"], r"mask 'missing\.png' cannot be read: no such file"),
        (["--edits", "[['MASK.jpg', 0, 1.0]]"], r"mask '.*MASK\.jpg' is not a PNG image"),
        (["--edits", "[[0, 1, 1.0]]", "--refine", "knn"], r"affinity='knn' must be one of 'full', 'mutual_knn'"),
        (["--edits", "[[0, 1, 1.0]]", "--refine", "mutual_knn", "--num_neighbours", "256"],
         r"num_neighbours=256 must be an integer from 1 to 255 \(S - 1, with S = 256"),
    ],
)
def test_picture_subcommands_name_bad_input(fitted, tmp_path, extra, message):
    Image.new("L", (64, 64), 255).save(tmp_path / "MASK.jpg")  # a mask in another format than PNG
    extra = [each.replace("MASK.jpg", str(tmp_path / "MASK.jpg")) for each in extra]
    with pytest.raises(ValueError, match=message):
        run(_picture_args(fitted, "edit", "--output", str(tmp_path / "x.png"), *extra))


@pytest.mark.slow
def test_layout_edited_writes_each_edited_image_alone_at_full_size(fitted, tmp_path):
    edits = ["--edits", "[[0, 5, 3.0]]", "--num_samples", "2", "--seed", "3"]
    run(_picture_args(fitted, "edit", *edits, "--output", str(tmp_path / "rows.png")))
    run(_picture_args(fitted, "edit", *edits, "--layout", "edited", "--output", str(tmp_path / "alone.png")))
    assert sorted(path.name for path in tmp_path.glob("alone*.png")) == ["alone_0.png", "alone_1.png"]
    with Image.open(tmp_path / "rows.png") as picture:
        rows = np.asarray(picture.convert("RGB"))
    for i in range(2):
        with Image.open(tmp_path / f"alone_{i}.png") as picture:
            alone = np.asarray(picture.convert("RGB"))
        top = HEADER_HEIGHT + i * CELL + 2
        assert alone.shape == (64, 64, 3)
        np.testing.assert_array_equal(alone, rows[top : top + 128 : 2, CELL + 2 : CELL + 130 : 2])  # the middle column


def _console(*args, env=None):
    panda = Path(sys.executable).parent / "panda"  # the installed console script
    return subprocess.run([str(panda), *args], capture_output=True, text=True, timeout=300, env=env)


@pytest.mark.slow
def test_the_console_script_says_bad_input_in_one_line_with_status_2(fitted, tmp_path):
    checkpoint = fitted / "checkpoints" / "last.ckpt"
    picture = tmp_path / "picture.ckpt"
    picture.write_bytes((Path(__file__).parents[1] / "docs" / "parts.png").read_bytes())
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(checkpoint.read_bytes()[:5000])
    weights = tmp_path / "weights.ckpt"
    torch.save({"parts": torch.zeros(3)}, weights)
    common = ["--config", str(fitted / "config.yaml"), "--output", str(tmp_path / "x.png")]
    cases = {
        "picture": (["saliency", *common, "--ckpt_path", str(picture), "--appearances", "[0]"],
                    rf"ckpt_path='{picture}' is not a checkpoint written by `panda fit`: torch.save writes a zip archive"),
        "truncated": (["saliency", *common, "--ckpt_path", str(truncated), "--appearances", "[0]"],
                      rf"ckpt_path='{truncated}' is not a checkpoint written by `panda fit`.*cut short"),
        "weights": (["rank", *common, "--ckpt_path", str(weights), "--appearance", "0"],
                    rf"ckpt_path='{weights}' is not a checkpoint of `panda fit`: it has no state_dict or hyper_parameters"),
        "resume": (["fit", "--config", str(fitted / "config.yaml"), "--ckpt_path", str(truncated)], r"cut short"),
        "no such layer": (["fit", "--config", str(fitted / "config.yaml"), "--data.layer", "main.99"],
                          r"layer='main\.99' is not a sub-module of PhotoFaceDCGAN\. Did you mean 'main\.9'"),
        "part": (["edit", *common, "--ckpt_path", str(checkpoint), "--edits", "[[9, 0, 1.0]]"],
                 r"part=9 must be an integer from 0 to 7 \(an index into the 8 parts\)"),
        "layer": (["edit", *common, "--ckpt_path", str(checkpoint), "--data.layer", "main.11", "--edits", "[[0, 1, 1.0]]"],
                  rf"ckpt_path='{checkpoint}' holds factors of layer 'main\.8'"),
    }
    with ThreadPoolExecutor(max_workers=2) as pool:  # (each process mostly imports: two at a time on two cores)
        results = dict(zip(cases, pool.map(lambda case: _console(*case[0]), cases.values())))
    for name, (args, message) in cases.items():
        result = results[name]
        errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
        assert result.returncode == 2, (name, result.stderr[-2000:])
        assert "Traceback" not in result.stderr and len(errors) == 1, (name, result.stderr[-2000:])
        assert re.search(message, errors[0]), (name, errors[0])
    debugged = _console(*cases["part"][0], "--debug")
    assert debugged.returncode == 1 and "Traceback" in debugged.stderr and "part=9 must be" in debugged.stderr


@pytest.mark.slow
def test_a_checkpoint_that_holds_code_is_refused_in_one_line_and_not_run(fitted, tmp_path):
    marker = tmp_path / "ran"
    checkpoint = torch.load(fitted / "checkpoints" / "last.ckpt", weights_only=False)
    torch.save({**checkpoint, "extra": Exploit(marker)}, tmp_path / "code.ckpt")
    config, code = str(fitted / "config.yaml"), str(tmp_path / "code.ckpt")
    for args in (["edit", "--config", config, "--ckpt_path", code, "--edits", "[[0, 1, 1.0]]"], ["fit", "--config", config, "--ckpt_path", code]):
        result = _console(*args)
        errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
        assert result.returncode == 2 and "Traceback" not in result.stderr and len(errors) == 1, result.stderr[-2000:]
        assert re.fullmatch(rf"error: ckpt_path='{code}' was not loaded: it holds code \(it asks for (posix|os)\.system\).*", errors[0])
    assert not marker.exists()


@pytest.mark.slow
def test_console_script_help_explains_the_options():
    panda = Path(sys.executable).parent / "panda"  # the installed console script
    top = subprocess.run([str(panda), "--help"], capture_output=True, text=True, check=True).stdout
    subcommands = set(re.search(r"\{([a-z,]+)\}", top).group(1).split(","))
    assert {"fit", "edit", "remove", "saliency", "rewrite", "rank", "refine"} <= subcommands
    assert "configs/photo_faces.yaml" in top
    fit = subprocess.run([sys.executable, "-m", "panda_lightning.cli", "fit", "--help"], capture_output=True, text=True, check=True).stdout
    assert "the number of parts" in fit and "dotted path of the sub-module" in fit


@pytest.mark.slow
def test_config_typo_is_caught_before_fitting(tmp_path, capsys):
    with pytest.raises(SystemExit):
        run(fit_args(tmp_path, "--model.parts_rnk", "3"))
    assert "parts_rnk" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_unknown_layer_names_the_valid_layers(tmp_path):
    with pytest.raises(ValueError, match=r"layer='main\.99'.*Valid layers: main, main\.0"):
        run(fit_args(tmp_path, "--data.layer", "main.99"))


@pytest.mark.slow
def test_too_many_parts_says_both_numbers(tmp_path):
    with pytest.raises(ValueError, match=r"parts_rank=300 must be an integer from 1 to 256 \(at most the number of positions H\*W = 16\*16\)"):
        run(fit_args(tmp_path, "--model.parts_rank", "300"))


def _start_long_fit(tmp_path, devices):
    assert devices in (1, 2)
    """A fit through the console script, returned once its step-100 checkpoint is written."""
    panda = Path(sys.executable).parent / "panda"
    processes = ["--trainer.accelerator", "cpu"]
    if devices == 2:  # the README's config for two CPU processes, with debug.yaml's global batch
        processes += ["--config", str(CONFIGS / "cpu_ddp.yaml"), "--data.batch_size", "8"]
    args = fit_args(tmp_path, "--trainer.max_steps", "100000", "--model.stop_when_converged", "false", *processes)
    log = tmp_path / "fit.log"  # a file, not a pipe: a full pipe would block the fit
    process = subprocess.Popen([str(panda), *args], stdout=subprocess.DEVNULL, stderr=log.open("w"))
    checkpoints = tmp_path / "runs" / "panda" / "version_0" / "checkpoints"
    deadline = time.monotonic() + 120
    while not (checkpoints / "epoch=0-step=100.ckpt").exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"the fit ended or stalled before step 100: {log.read_text()[-3000:]}")
        time.sleep(0.2)
    return process, log, checkpoints


def _assert_every_process_ended(process, tmp_path):
    process.wait(timeout=30)  # within seconds, as a scheduler expects
    deadline = time.monotonic() + 10
    while subprocess.run(["pgrep", "-f", str(tmp_path)], capture_output=True).stdout:
        assert time.monotonic() < deadline, "a rank outlived the launcher by 10 s"
        time.sleep(0.2)


def _assert_resumes_from(tmp_path, checkpoint):
    interrupted = torch.load(checkpoint, weights_only=False)
    step = interrupted["global_step"]
    assert step >= 100 and all(torch.isfinite(t).all() for t in interrupted["state_dict"].values())
    resumed = run(fit_args(tmp_path / "resumed", "--trainer.max_steps", str(step + 3), "--ckpt_path", str(checkpoint)))
    assert resumed.trainer.global_step == step + 3
    assert resumed.datamodule.next_step >= step + 3  # the stream went on, never back
    return resumed


@pytest.mark.slow
@pytest.mark.parametrize("devices", [1, 2])
def test_sigterm_leaves_a_checkpoint_that_resumes(tmp_path, devices):
    process, _, checkpoints = _start_long_fit(tmp_path, devices)
    process.send_signal(signal.SIGTERM)
    _assert_every_process_ended(process, tmp_path)
    resumed = _assert_resumes_from(tmp_path, checkpoints / "interrupted.ckpt")
    # Stopped between steps: the stream goes on exactly where the steps did.
    assert resumed.datamodule.next_step == resumed.trainer.global_step


@pytest.mark.slow
def test_a_killed_process_ends_the_fit_with_a_message_and_a_checkpoint(tmp_path):
    process, log, checkpoints = _start_long_fit(tmp_path, devices=2)
    (rank_1,) = subprocess.run(["pgrep", "-P", str(process.pid)], capture_output=True, text=True).stdout.split()
    os.kill(int(rank_1), signal.SIGKILL)  # as the kernel's out-of-memory killer would
    _assert_every_process_ended(process, tmp_path)
    assert process.returncode != 0
    assert "another process of the fit ended first" in log.read_text()
    _assert_resumes_from(tmp_path, checkpoints / "interrupted.ckpt")


def test_more_devices_than_the_machine_has_says_what_it_has():
    devices = torch.cuda.device_count() + 1
    with pytest.raises(MisconfigurationException, match=rf"devices={devices} cannot run here: .* This machine has {devices - 1} CUDA device"):
        PandATrainer(accelerator="gpu", devices=devices, logger=False)


def test_more_cpu_processes_than_cores_warns():
    with pytest.warns(UserWarning, match=rf"devices={os.cpu_count() + 1} CPU processes share {os.cpu_count()} cores"):
        PandATrainer(accelerator="cpu", devices=os.cpu_count() + 1, strategy="ddp", logger=False)


@pytest.mark.slow
def test_saliency_writes_its_localisations_as_masks_that_edit_takes(fitted, tmp_path):
    run(_picture_args(fitted, "saliency", "--appearances", "[1, 2]", "--num_samples", "2", "--threshold_samples", "64",
                      "--output", str(tmp_path / "saliency.png"), "--masks", str(tmp_path / "masks")))
    written = sorted(path.name for path in (tmp_path / "masks").iterdir())
    assert written == [f"sample{i}_appearance{j}.png" for i in (0, 1) for j in (1, 2)]
    mask = torch.from_numpy(np.asarray(Image.open(tmp_path / "masks" / "sample0_appearance1.png").convert("L"), dtype=np.float32) / 255)
    assert mask.shape == (64, 64) and set(mask.unique().tolist()) == {0.0, 1.0}  # m >= mu, or not
    assert torch.equal(mask, mask[::4, ::4].repeat_interleave(4, 0).repeat_interleave(4, 1))  # the layer's 16 x 16, enlarged
    # The localisation is a region to edit: as a mask of `panda edit`, the edit stays in it.
    edits = f"[['{tmp_path / 'masks' / 'sample0_appearance1.png'}', 3, 3.0]]"
    run(_picture_args(fitted, "edit", "--edits", edits, "--num_samples", "1", "--output", str(tmp_path / "edit.png")))
    with Image.open(tmp_path / "edit.png") as picture:
        pixels = torch.tensor(np.asarray(picture.convert("L")), dtype=torch.float32)
        difference = pixels[HEADER_HEIGHT + 2 : HEADER_HEIGHT + 130 : 2, 2 * CELL + 2 : 2 * CELL + 130 : 2]
    assert difference[mask == 1].mean() > 2 * difference[mask == 0].mean()
