"""Do two-process fits end cleanly? Runs a small two-process CPU fit with pictures many times
and counts the runs that did not exit with status 0 (an abort at exit is what this looks for).

    python -m benchmarks.two_process_exit [--runs 20] [--strategy ddp_spawn|ddp] [--load]

Each run is its own ``python -m benchmarks.two_process_exit --worker`` process: a fit of a small
style generator on 2 CPU processes (gloo) with the parts and refined-parts pictures, as the
tests do. ``--load`` runs a one-process fit of the face DCGAN beside the runs all along, so that
the processes are scheduled as on a loaded machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time


def worker(strategy: str, directory: str) -> None:
    import lightning as L
    from lightning.pytorch.loggers import TensorBoardLogger

    from panda_lightning import PandA
    from panda_lightning.callbacks import PartsOverlay, RefinedParts
    from panda_lightning.datamodules import GeneratorActivations
    from panda_lightning.generators import StyleGenerator

    generator = StyleGenerator(latent_dim=16, channels=16, resolution=16)
    datamodule = GeneratorActivations(generator, layer="synthesis.b8.conv1", batch_size=4, val_samples=8)
    model = PandA(datamodule.feature_shape, parts_rank=4, init_samples=16, stop_when_converged=False)
    trainer = L.Trainer(
        accelerator="cpu", devices=2, strategy=strategy, max_steps=4, val_check_interval=2,
        default_root_dir=directory, logger=TensorBoardLogger(directory),
        callbacks=[PartsOverlay(num_samples=1), RefinedParts(num_samples=1)],
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
    )
    trainer.fit(model, datamodule)


def load(directory: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "panda_lightning.cli", "fit", "--config", "configs/dcgan_faces.yaml",
         "--trainer.default_root_dir", directory,
         "--trainer.max_steps", "100000", "--model.stop_when_converged", "false", "--trainer.logger", "false",
         "--trainer.enable_checkpointing", "false", "--trainer.callbacks", "[]", "--trainer.enable_progress_bar", "false"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.two_process_exit", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--strategy", choices=["ddp_spawn", "ddp"], default="ddp_spawn")
    parser.add_argument("--load", action="store_true", help="a one-process fit runs beside, all along")
    parser.add_argument("--worker", metavar="DIRECTORY", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.strategy, args.worker)
        return

    print(f"{platform.machine()}, {os.cpu_count()} CPU cores; {args.runs} runs, strategy {args.strategy}, "
          f"{'with' if args.load else 'without'} a fit beside")
    scratch = tempfile.TemporaryDirectory()
    background = load(scratch.name) if args.load else None
    failures, start = [], time.perf_counter()
    try:
        for run in range(args.runs):
            with tempfile.TemporaryDirectory() as directory:
                result = subprocess.run(
                    [sys.executable, "-m", "benchmarks.two_process_exit", "--strategy", args.strategy, "--worker", directory],
                    capture_output=True, text=True, timeout=600,
                )
            if result.returncode != 0:
                last = [line for line in result.stderr.splitlines() if line.strip()][-3:]
                failures.append(run)
                print(f"run {run}: exit status {result.returncode}: {' | '.join(last)}", flush=True)
    finally:
        if background is not None:
            background.kill()
            background.wait()
        scratch.cleanup()
    print(f"{len(failures)} of {args.runs} runs did not exit cleanly ({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
