"""Fit the default config at each layer, then 10x longer, and compare their held-out errors.

    python -m benchmarks.speed.fit [--config configs/dcgan_faces.yaml] [--layers main.5 main.8 main.11]
                             [--factor 10] [--held-out 512] [--model.appearance_rank 32 ...]

For each layer, prints: steps, wall time of the whole fit (HOSVD initialisation and
validations included), the relative reconstruction error
``sum_i ||Z_i - A A^T Z_i P P^T||^2 / sum_i ||Z_i||^2`` on held-out samples that neither fit
saw (nor validated on), and ``||A^T A - I||_F``; then the same for a fit of ``factor`` times
the default's steps that does not stop at convergence, and how far the default is from it.
Other arguments go to ``panda fit`` as they are.
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from collections.abc import Callable

import torch
from torch import Tensor

from panda_lightning.cli import run as panda
from panda_lightning.datamodules import GeneratorActivations
from panda_lightning.generators.latents import latents_for
from panda_lightning.functional.factorization import orthogonality_error, unfold
from panda_lightning.metrics import RelativeError

EVALUATION_SEED, EVALUATION_STREAM = 12345, 99  # apart from every fit's own streams


def evaluator(datamodule: GeneratorActivations, num_samples: int) -> Callable[[Tensor, Tensor], float]:
    """The relative error of factors ``(A, P)`` on ``num_samples`` samples that no fit sees
    (their activations computed once); ``inf`` for factors that diverged."""
    held_out = [
        unfold(datamodule.generator.activations(latents_for(datamodule.generator.sampler, EVALUATION_SEED, EVALUATION_STREAM, range(start, min(start + 128, num_samples)))))
        for start in range(0, num_samples, 128)
    ]

    def error(A: Tensor, P: Tensor) -> float:
        metric = RelativeError().to(held_out[0].device)
        for Z in held_out:
            metric.update(Z, A.detach().to(Z), P.detach().to(Z))
        value = metric.compute().item()
        return value if value == value else float("inf")  # NaN: diverged

    return error


def fit(config: str, extra: list[str], held_out: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as directory:
        start = time.perf_counter()
        cli = panda([
            "fit", "--config", config, "--trainer.enable_progress_bar", "false",
            "--trainer.logger.init_args.save_dir", directory, "--trainer.default_root_dir", directory, *extra,
        ])
        seconds = time.perf_counter() - start
        return {
            "steps": cli.trainer.global_step,
            "seconds": seconds,
            "error": evaluator(cli.datamodule, held_out)(cli.model.appearances, cli.model.parts),
            "orthogonality": orthogonality_error(cli.model.appearances.detach().double()).item(),
        }


def row(name: str, result: dict[str, float]) -> str:
    return (
        f"{name:<22} {result['steps']:>6} {result['seconds']:>8.1f} "
        f"{result['error']:>10.5f} {result['orthogonality']:>12.2e}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.speed.fit", description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/dcgan_faces.yaml")
    parser.add_argument("--layers", nargs="+", default=["main.5", "main.8", "main.11"])
    parser.add_argument("--factor", type=int, default=10, help="0 skips the longer runs")
    parser.add_argument("--held-out", type=int, default=512)
    args, extra = parser.parse_known_args()
    sys.argv = sys.argv[:1]  # the rest belongs to this script, not to LightningCLI
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"{torch.get_num_threads()} CPU threads"
    print(f"torch {torch.__version__}, {device}, {platform.machine()}; config {args.config} {' '.join(extra)}")
    print(f"held-out: {args.held_out} samples no fit saw; error = relative reconstruction error")
    print(f"{'layer / run':<22} {'steps':>6} {'seconds':>8} {'error':>10} {'|A^T A - I|':>12}")
    for layer in args.layers:
        options = [f"--data.layer={layer}", *extra]
        default = fit(args.config, options, args.held_out)
        print(row(f"{layer} default", default), flush=True)
        if not args.factor:
            continue
        longer_steps = [f"--trainer.max_steps={args.factor * default['steps']}", "--model.stop_when_converged=false"]
        longer = fit(args.config, [*options, *longer_steps], args.held_out)
        gap = 100 * (default["error"] / longer["error"] - 1)
        print(row(f"{layer} {args.factor}x longer", longer) + f"   default is {gap:+.2f}% from it", flush=True)


if __name__ == "__main__":
    main()
