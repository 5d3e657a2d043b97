"""A race to the held-out floor: the default fit, the default fit without its activation pool,
and the reference code's loop, all against their own clocks, on the same held-out samples.

    python -m benchmarks.speed.race [--config configs/dcgan_faces.yaml] [--layer main.8]
                              [--floor-factor 10] [--reference-seconds 60] [--held-out 512]

- ``default``: ``panda fit --config ...`` as it is (its pictures left out).
- ``streaming``: the fit as it was before the activation pool: every step a fresh batch, used
  once (``--data.pool_bytes 0``), the validation samples run through the generator at each
  validation, every 100 steps, and 1024 HOSVD samples.
- ``reference``: the reference code's loop: a batch of one fresh sample per iteration, the
  gradients of Eq. 4-5 evaluated left to right (``S x S`` and ``C x C`` products), the
  unnormalised loss, a fixed learning rate (each of a small grid, in units of one over a
  sample's mean energy, run for ``--reference-seconds``: the best is the reference's), the
  HOSVD initialisation from the same number of samples.

The floor is the held-out error of the default fit run ``--floor-factor`` times as many steps
without stopping. Each fit records its factors along the way (every 25 steps, or every 0.25 s
for the reference), on a clock that starts before its initialisation; they are evaluated after
it on ``--held-out`` samples of a stream no fit sees. Printed for each: its final error, and the
seconds it needed to come within 2% and 1% of the floor (``never`` if it did not), and how many
times sooner the default came within 1% than the others. For the default fit also: the
generator's time per batch, and a step's time outside the generator. A short fit first warms
the process up, untimed.
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from collections.abc import Callable

import lightning as L
import torch
from torch import Tensor

from benchmarks.speed.fit import evaluator, unfold
from benchmarks.speed.gradients import left_to_right_appearances, left_to_right_parts
from panda_lightning.cli import PandACLI, run as panda
from panda_lightning.datamodules import GeneratorActivations
from panda_lightning.functional.factorization import channel_scatter, hosvd_appearances, random_parts

TARGETS = (0.02, 0.01)
STREAMING = ["--data.pool_bytes=0", "--data.keep_validation=false", "--trainer.val_check_interval=100", "--model.init_samples=1024"]

Trajectory = list[tuple[float, Tensor, Tensor]]  # (seconds on the fit's clock, A, P)


class Snapshots(L.Callback):
    """Records ``(seconds, A, P)`` every ``every`` steps, on a clock from the start of the fit
    (before the HOSVD initialisation), and the time the generator spends in training batches."""

    def __init__(self, every: int = 25):
        self.every = every
        self.trajectory: Trajectory = []
        self.generator_seconds = 0.0
        self.generator_batches = 0

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.start = time.perf_counter()
        datamodule = trainer.datamodule
        activations = datamodule.generator.activations

        def timed(latents: Tensor) -> Tensor:
            start = time.perf_counter()
            result = activations(latents)
            if trainer.training and not trainer.sanity_checking:
                self.generator_seconds += time.perf_counter() - start
                self.generator_batches += 1
            return result

        datamodule.generator.activations = timed  # an instance attribute: the class stays as it is

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args) -> None:
        if trainer.global_step % self.every == 0:
            self.record(pl_module)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.record(pl_module)
        self.seconds = time.perf_counter() - self.start

    def record(self, pl_module: L.LightningModule) -> None:
        seconds = time.perf_counter() - self.start
        self.trajectory.append((seconds, pl_module.appearances.detach().clone(), pl_module.parts.detach().clone()))


# The config's callbacks but its pictures: the checkpoints a fit writes are part of its cost.
CALLBACKS = (
    '[{"class_path": "panda_lightning.callbacks.LastCheckpoint", "init_args": {"save_last": true, '
    '"every_n_train_steps": 100}}, {"class_path": "panda_lightning.callbacks.CheckpointOnInterrupt"}]'
)


def lightning_fit(config: str, layer: str, extra: list[str]) -> tuple[Snapshots, PandACLI]:
    snapshots = Snapshots()
    with tempfile.TemporaryDirectory() as directory:
        cli = panda([
            "fit", "--config", config, f"--data.layer={layer}", "--trainer.enable_progress_bar=false",
            "--trainer.logger.init_args.save_dir", directory, "--trainer.default_root_dir", directory,
            f"--trainer.callbacks={CALLBACKS}", *extra,
        ], trainer_defaults={"callbacks": [snapshots]})
    return snapshots, cli


def reference_fit(datamodule: GeneratorActivations, parts_rank: int, init_samples: int, lr: float, seconds: float) -> Trajectory:
    """The reference loop for ``seconds``: HOSVD, then per iteration one fresh sample, a P step
    by Eq. 4 projected onto ``P >= 0``, an A step by Eq. 5 at the new P (no projection)."""
    start = time.perf_counter()
    scatter = sum(channel_scatter(unfold(Z)) for Z in datamodule.held_out_batches(init_samples))
    A = hosvd_appearances(scatter, scatter.shape[0])
    P = random_parts(unfold(datamodule.generator.activations(datamodule.generator.held_out_latents(range(1)))).shape[-1], parts_rank, torch.Generator().manual_seed(0)).to(A)
    trajectory: Trajectory = [(time.perf_counter() - start, A.clone(), P.clone())]
    generator, step, next_record = torch.Generator().manual_seed(1), 0, 0.25
    while (elapsed := time.perf_counter() - start) < seconds:
        Z = unfold(datamodule.generator.activations(datamodule.generator.sampler(1, generator)))
        P = (P - lr * left_to_right_parts(Z, A, P)).clamp(min=0)
        A = A - lr * left_to_right_appearances(Z, A, P)
        step += 1
        if not (torch.isfinite(P).all() and torch.isfinite(A).all()):
            break  # this rate diverged: its trajectory ends here
        if elapsed >= next_record:
            trajectory.append((elapsed, A.clone(), P.clone()))
            next_record += 0.25
    return trajectory


def curve(trajectory: Trajectory, error: Callable[[Tensor, Tensor], float]) -> list[tuple[float, float]]:
    return [(seconds, error(A, P)) for seconds, A, P in trajectory]


def seconds_to(points: list[tuple[float, float]], target: float) -> float:
    """When ``points`` first came to ``target`` or below; ``inf`` if never."""
    return next((seconds for seconds, value in points if value <= target), float("inf"))


def time_to(points: list[tuple[float, float]], target: float) -> str:
    seconds = seconds_to(points, target)
    return f"{seconds:.1f}" if seconds < float("inf") else "never"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.speed.race", description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/dcgan_faces.yaml")
    parser.add_argument("--layer", default="main.8")
    parser.add_argument("--floor-factor", type=int, default=10)
    parser.add_argument("--reference-seconds", type=float, default=60.0)
    parser.add_argument("--reference-rates", type=float, nargs="+", default=[0.01, 0.02, 0.04, 0.08],
                        help="learning rates in units of 1 / (a sample's mean energy ||Z_i||^2)")
    parser.add_argument("--held-out", type=int, default=512)
    parser.add_argument("--skip", nargs="*", default=[], choices=["streaming", "reference", "floor"])
    args = parser.parse_args()
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"{torch.get_num_threads()} CPU threads"
    print(f"torch {torch.__version__}, {device}, {platform.machine()}; config {args.config}, layer {args.layer}")

    lightning_fit(args.config, args.layer, ["--trainer.max_steps=50"])  # warm-up, untimed: every row runs warm
    default, cli = lightning_fit(args.config, args.layer, [])
    steps, datamodule, model = cli.trainer.global_step, cli.datamodule, cli.model.hparams
    fits: dict[str, tuple[Snapshots | None, list]] = {"default": (default, [])}
    if "streaming" not in args.skip:
        fits["streaming"] = (lightning_fit(args.config, args.layer, STREAMING)[0], [])
    floor_fit = None
    if "floor" not in args.skip:
        floor_fit, _ = lightning_fit(args.config, args.layer, [
            f"--trainer.max_steps={args.floor_factor * steps}", "--model.stop_when_converged=false",
        ])

    error = evaluator(datamodule, args.held_out)
    for name, (snapshots, _) in fits.items():
        fits[name] = (snapshots, curve(snapshots.trajectory, error))
    floor = error(*floor_fit.trajectory[-1][1:]) if floor_fit else min(value for _, value in fits["default"][1])

    reference: dict[float, list] = {}
    if "reference" not in args.skip:
        energy = sum(Z.square().sum().item() for Z in datamodule.held_out_batches(256)) / 256
        for rate in args.reference_rates:
            trajectory = reference_fit(datamodule, model["parts_rank"], model["init_samples"], rate / energy, args.reference_seconds)
            reference[rate] = curve(trajectory, error)

    what = "of a fit" if floor_fit is None else f"of the default fit run {args.floor_factor}x as many steps ({args.floor_factor * steps})"
    print(f"floor: {floor:.5f}, the held-out error {what}; {args.held_out} held-out samples")
    print(f"{'fit':<28} {'seconds':>8} {'final':>9} {'within 2%':>10} {'within 1%':>10}")
    for name, (snapshots, points) in fits.items():
        print(f"{name:<28} {snapshots.seconds:>8.1f} {points[-1][1]:>9.5f} "
              + " ".join(f"{time_to(points, floor * (1 + t)):>10}" for t in TARGETS))
    for rate, points in reference.items():  # every rate of the grid: the best is the reference's
        print(f"{f'reference, lr {rate:g} / energy':<28} {points[-1][0]:>8.1f} {points[-1][1]:>9.5f} "
              + " ".join(f"{time_to(points, floor * (1 + t)):>10}" for t in TARGETS))
    if "streaming" in fits and reference:
        target = floor * (1 + TARGETS[-1])
        ours = seconds_to(fits["default"][1], target)
        best = min(seconds_to(points, target) for points in reference.values())
        print(f"within 1%: the default {seconds_to(fits['streaming'][1], target) / ours:.1f}x sooner than streaming, "
              f"{best / ours:.1f}x sooner than the reference at its best rate")
    batches = default.generator_batches
    outside = (default.seconds - default.generator_seconds) / steps
    print(f"default: {steps} steps, {batches} generator batches at {1e3 * default.generator_seconds / max(batches, 1):.1f} ms each; "
          f"a step outside the generator {1e3 * outside:.1f} ms (validation and initialisation included)")


if __name__ == "__main__":
    sys.exit(main())
