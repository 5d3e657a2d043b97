"""Fit the default config, then fit 10x longer, and compare the held-out relative error.

    python benchmarks/fit.py [--config configs/dcgan_faces.yaml] [--layer main.8] [--factor 10]

Prints, for each run: steps, wall time of the whole fit (HOSVD initialisation included) and
the relative reconstruction error ``sum_i ||Z_i - A A^T Z_i P P^T||^2 / sum_i ||Z_i||^2`` on
held-out samples that neither fit saw.
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time

import torch
from einops import rearrange

from datamodules.latent_stream import latents_for
from panda_lightning.cli import run as panda
from panda_lightning.factorization import reconstruction_loss

EVALUATION_STREAM = 99  # apart from the fit's own streams (seed 12345)


def held_out_error(cli, num_samples: int) -> float:
    datamodule, model = cli.datamodule, cli.model
    appearances, parts = model.appearances.detach().cpu(), model.parts.detach().cpu()
    loss = energy = 0.0
    for start in range(0, num_samples, 128):
        latents = latents_for(datamodule.sampler, 12345, EVALUATION_STREAM, range(start, min(start + 128, num_samples)))
        Z = rearrange(datamodule.activations(latents).cpu(), "n c h w -> n c (h w)")
        loss += reconstruction_loss(Z, appearances, parts).item()
        energy += Z.square().sum().item()
    return loss / energy


def fit(config: str, extra: list[str], held_out: int) -> tuple[int, float, float, str]:
    with tempfile.TemporaryDirectory() as directory:
        start = time.perf_counter()
        cli = panda([
            "fit", "--config", config, "--trainer.enable_progress_bar", "false",
            "--trainer.logger.init_args.save_dir", directory, "--trainer.default_root_dir", directory, *extra,
        ])
        seconds = time.perf_counter() - start
        steps = ", ".join(f"{o.step_size:g}" for o in cli.trainer.optimizers)
        return cli.trainer.global_step, seconds, held_out_error(cli, held_out), steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/dcgan_faces.yaml")
    parser.add_argument("--layer", default=None, help="override the config's data.layer")
    parser.add_argument("--factor", type=int, default=10, help="0 skips the longer run")
    parser.add_argument("--held-out", type=int, default=512)
    args = parser.parse_args()
    sys.argv = sys.argv[:1]  # the rest belongs to this script, not to LightningCLI
    layer = [f"--data.layer={args.layer}"] if args.layer else []
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.machine()}; config {args.config} {' '.join(layer)}")

    steps, seconds, error, step_sizes = fit(args.config, layer, args.held_out)
    print(f"default:    {steps:>6} steps {seconds:>7.1f} s  held-out relative error {error:.5f}  step sizes (P, A) {step_sizes}", flush=True)
    if not args.factor:
        return
    longer = [*layer, f"--trainer.max_steps={args.factor * steps}", "--model.stop_when_converged=false"]
    long_steps, long_seconds, long_error, _ = fit(args.config, longer, args.held_out)
    print(f"{args.factor}x longer: {long_steps:>6} steps {long_seconds:>7.1f} s  held-out relative error {long_error:.5f}")
    print(f"default / longer: {error / long_error:.4f} ({100 * (error / long_error - 1):+.2f}%)")


if __name__ == "__main__":
    main()
