"""Time PandA's factored gradients against the paper's Eq. 4-5 evaluated left to right.

    python -m benchmarks.speed.gradients [--repeats 5]

Both compute the gradients with respect to P and A on the same tensors in the same run; the
script prints each time (median of the repeats), the ratio, and the largest difference of the
two results relative to the largest gradient entry.
"""

from __future__ import annotations

import argparse
import platform

import torch

from benchmarks.speed.timing import median_seconds
from panda_lightning.functional.factorization import loss_and_appearance_gradient, loss_and_parts_gradient

CASES = [  # N, C, H, W, R_C, R_S
    (16, 64, 32, 32, 64, 8),
    (8, 512, 16, 16, 512, 8),
    (64, 128, 16, 16, 128, 8),  # the default config: face DCGAN main.8, batch 64
]


def factored(Z, A, P):
    return loss_and_parts_gradient(Z, A, P)[1], loss_and_appearance_gradient(Z, A, P)[1]


def left_to_right_parts(Z, A, P):
    """Eq. 4 as printed, summed over ``Z: (N, C, S)``, with Pbar = P P^T (S x S) and Abar = A A^T (C x C)."""
    Pbar, Abar = P @ P.T, A @ A.T
    return 2 * sum(Pbar @ z.T @ Abar @ Abar @ z @ P + z.T @ Abar @ Abar @ z @ Pbar @ P - 2 * z.T @ Abar @ z @ P for z in Z)


def left_to_right_appearances(Z, A, P):
    """Eq. 5 as printed, summed over ``Z: (N, C, S)``."""
    Pbar, Abar = P @ P.T, A @ A.T
    return 2 * sum(Abar @ z @ Pbar @ Pbar @ z.T @ A + z @ Pbar @ Pbar @ z.T @ Abar @ A - 2 * z @ Pbar @ z.T @ A for z in Z)


def left_to_right(Z, A, P):
    return left_to_right_parts(Z, A, P), left_to_right_appearances(Z, A, P)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.speed.gradients", description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    repeats = parser.parse_args().repeats
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}, float32, median of {repeats}")
    print(f"{'N':>3} {'C':>4} {'HxW':>6} {'R_C':>4} {'R_S':>3} | {'factored':>10} {'Eq.4-5':>10} {'ratio':>7} | max rel diff")
    generator = torch.Generator().manual_seed(0)
    for N, C, H, W, R_C, R_S in CASES:
        Z = torch.randn(N, C, H * W, generator=generator).relu()
        A = torch.linalg.qr(torch.randn(C, R_C, generator=generator))[0]
        P = torch.rand(H * W, R_S, generator=generator) / (H * W) ** 0.5
        ours = median_seconds(factored, repeats, Z, A, P)
        paper = median_seconds(left_to_right, repeats, Z, A, P)
        difference = max(
            ((a - b).abs().max() / b.abs().max()).item()
            for a, b in zip(factored(Z, A, P), left_to_right(Z, A, P))
        )
        print(
            f"{N:>3} {C:>4} {f'{H}x{W}':>6} {R_C:>4} {R_S:>3} | {ours * 1e3:>8.2f}ms {paper * 1e3:>8.1f}ms "
            f"{paper / ours:>6.1f}x | {difference:.1e}"
        )


if __name__ == "__main__":
    main()
