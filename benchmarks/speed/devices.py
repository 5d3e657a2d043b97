"""Steps per second of the default fit on 1 and 2 CPU processes and, where there is one, a GPU.

    python -m benchmarks.speed.devices [--config configs/dcgan_faces.yaml] [--layer main.8]

Each setting runs the config to convergence in a fresh process (``panda fit`` with the config's
callbacks, checkpoints and pictures), with the same global batch split over the processes, so
every setting takes the same steps. Printed: the steps, the wall time of the whole command
(start-up, HOSVD initialisation and pictures included), the time of the training loop
(Lightning's ``Timer``) and steps per second in that loop.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import warnings

import torch

RESULT = "RESULT "
# Lightning's Timer (on_train_start to on_train_end); its interval given as text so that the
# CLI can write the run's config.yaml.
TIMER = {"class_path": "lightning.pytorch.callbacks.Timer", "init_args": {"interval": "step"}}


def settings() -> list[tuple[str, int]]:
    found = [("cpu", 1), ("cpu", 2)]
    if torch.cuda.is_available():
        found += [("gpu", n) for n in sorted({1, torch.cuda.device_count()})]
    return found


def worker(args: argparse.Namespace, rest: list[str]) -> None:
    """One fit, run by Lightning's DDP launcher on every process; rank 0 prints the result."""
    from lightning.pytorch.callbacks import Timer

    from panda_lightning.cli import run as panda

    with tempfile.TemporaryDirectory() as directory:
        cli = panda([
            "fit", "--config", args.config, "--trainer.enable_progress_bar", "false",
            "--trainer.logger.init_args.save_dir", directory, "--trainer.default_root_dir", directory,
            "--trainer.accelerator", args.accelerator, "--trainer.devices", str(args.devices),
            "--trainer.strategy", "ddp" if args.devices > 1 else "auto",
            "--data.batch_size", str(args.batch_size // args.devices),
            f"--trainer.callbacks+={json.dumps(TIMER)}", *rest,
        ])
    (timer,) = [c for c in cli.trainer.callbacks if isinstance(c, Timer)]
    if cli.trainer.is_global_zero:
        print(RESULT + json.dumps({
            "steps": cli.trainer.global_step, "train_seconds": timer.time_elapsed("train"),
            "threads": torch.get_num_threads(),
            "device": torch.cuda.get_device_name() if args.accelerator == "gpu" else platform.processor() or platform.machine(),
        }), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.speed.devices", description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/dcgan_faces.yaml")
    parser.add_argument("--layer", default=None, help="override the config's data.layer")
    parser.add_argument("--batch_size", type=int, default=64, help="global batch, split over the processes")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--accelerator", default="cpu", help=argparse.SUPPRESS)
    parser.add_argument("--devices", type=int, default=1, help=argparse.SUPPRESS)
    args, rest = parser.parse_known_args()
    rest += [f"--data.layer={args.layer}"] if args.layer else []
    if args.worker:
        # sys.argv stays whole: Lightning's DDP launcher starts the other processes with it.
        warnings.filterwarnings("ignore", message="LightningCLI's args parameter is intended")
        return worker(args, rest)

    print(f"torch {torch.__version__}, {os.cpu_count()} CPU cores, {platform.machine()}, "
          f"{torch.cuda.device_count()} CUDA device(s); config {args.config} {' '.join(rest)}, global batch {args.batch_size}")
    print(" accelerator devices batch/process | steps  command s  train loop s  steps/s | threads/process  device")
    for accelerator, devices in settings():
        # A module, as this one: Lightning's DDP launcher starts the other processes with `-m` as well.
        command = [sys.executable, "-m", "benchmarks.speed.devices", "--worker", "--config", args.config,
                   "--accelerator", accelerator, "--devices", str(devices), "--batch_size", str(args.batch_size), *rest]
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        lines = [line for line in done.stdout.splitlines() if line.startswith(RESULT)]
        if done.returncode or not lines:
            print(f" {accelerator:>11} {devices:>7} failed: {done.stderr[-2000:]}")
            continue
        result = json.loads(lines[-1][len(RESULT):])
        steps, train = result["steps"], result["train_seconds"]
        print(f" {accelerator:>11} {devices:>7} {args.batch_size // devices:>13} | {steps:>5} {seconds:>10.1f} "
              f"{train:>13.1f} {steps / train:>8.3g} | {result['threads']:>15}  {result['device']}", flush=True)


if __name__ == "__main__":
    main()
