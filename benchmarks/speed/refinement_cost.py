"""Time and memory of parts refinement (Sec. 4.2-4.3, Alg. 2) at sizes where W_i is S x S.

    python -m benchmarks.speed.refinement_cost [--neighbours 16] [--steps 100] [--repeats 5]

(a) The mutual-kNN refinement of one sample at S = 128 x 128, C = R_C = 512, R_S = 16, on a
    synthetic tensor: its time, the process's resident memory before and at its peak (ru_maxrss)
    against the 1 GiB that a dense S x S float32 affinity would need alone.
(b) Loss and gradient of Eq. 10 for the full affinity W = X^T X, by the low-rank Eq. 12 against
    the dense Eq. 11 (W formed once, then W P~ at each evaluation, and Eq. 11 as printed, left to
    right, once), at sizes where the dense W still fits: medians of the repeats, the ratio, and the
    largest difference of the gradients relative to the largest gradient entry.
"""

from __future__ import annotations

import argparse
import platform
import resource
import sys
import time

import torch

from benchmarks.speed.timing import median_seconds
from panda_lightning.functional.refinement import (
    low_rank_refinement_loss_and_gradient,
    mutual_knn_affinity,
    refine_parts,
)

FULL_CASES = [(32, 32), (64, 64)]  # H, W; with C = R_C = 512, R_S = 16
CHANNELS, APPEARANCES, PARTS = 512, 512, 16


def mebibytes(kilobytes_or_bytes: int) -> float:
    # ru_maxrss is in kilobytes on Linux, in bytes on macOS.
    return kilobytes_or_bytes / (2**20 if sys.platform == "darwin" else 2**10)


def peak_rss() -> float:
    return mebibytes(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def current_rss() -> float:
    try:  # Linux only; elsewhere the peak alone is printed
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * resource.getpagesize() / 2**20
    except OSError:
        return float("nan")


def synthetic(height: int, width: int, generator: torch.Generator):
    """ReLU activations with planted parts (R_S horizontal stripes, each with an appearance of its
    own, plus noise), orthonormal appearances, and global parts of unit norm: the scales of a fit."""
    stripes = torch.arange(height).repeat_interleave(width) * PARTS // height
    centres = torch.randn(CHANNELS, PARTS, generator=generator)
    Z = (centres[:, stripes] + torch.randn(CHANNELS, height * width, generator=generator)).relu()
    A = torch.linalg.qr(torch.randn(CHANNELS, APPEARANCES, generator=generator))[0]
    P = torch.rand(height * width, PARTS, generator=generator)
    return Z, A, P / P.norm(dim=0)


def dense_eq11(W, P):
    """Eq. 10-11 with W formed: W P~ once per evaluation, R_S x R_S products otherwise."""
    WP = W @ P
    cross, parts_gram = P.T @ WP, P.T @ P
    return -2 * cross.trace() + (cross * parts_gram).sum(), 2 * P @ cross + 2 * WP @ parts_gram - 4 * WP


def printed_eq11(W, P):
    """Eq. 10-11 left to right as printed, with P~ P~^T (S x S)."""
    outer = P @ P.T
    loss = -2 * (P.T @ W @ P).trace() + (outer @ W @ outer).trace()
    return loss, 2 * outer @ W @ P + 2 * W @ P @ P.T @ P - 4 * W @ P


def sparse_refinement(args, generator) -> None:
    height = width = 128
    S = height * width
    Z, A, P = synthetic(height, width, generator)
    dense_bytes = S * S * 4
    print(
        f"(a) mutual-kNN refinement of one sample: S = {height}x{width} = {S}, C = {CHANNELS}, R_C = {APPEARANCES}, "
        f"R_S = {PARTS}, k = {args.neighbours}, {args.steps} steps, float32"
    )
    rss_before, peak_before = current_rss(), peak_rss()
    start = time.perf_counter()
    graph = mutual_knn_affinity(A.T @ Z, args.neighbours)
    built = time.perf_counter() - start
    start = time.perf_counter()
    parts, losses = refine_parts(
        Z, A, P, affinity="mutual_knn", num_neighbours=args.neighbours, steps=args.steps, return_losses=True
    )
    refined = time.perf_counter() - start
    peak_after = peak_rss()
    edges = graph.values().numel() - S
    print(f"    kNN graph alone: {built:.2f} s; {edges} off-diagonal entries ({edges / S:.1f} per position) + {S} diagonal")
    print(f"    refine_parts (graph, power iteration and {args.steps} steps): {refined:.2f} s")
    print(f"    Eq. 10: {losses[0]:.6g} at the global P, {losses[-1]:.6g} after; parts >= 0: {bool((parts >= 0).all())}")
    print(
        f"    RSS before {rss_before:.0f} MiB (peak so far {peak_before:.0f} MiB), peak after {peak_after:.0f} MiB: "
        f"at most {peak_after - rss_before:.0f} MiB more, against {dense_bytes / 2**20:.0f} MiB for a dense "
        f"S x S float32 affinity alone"
    )


def full_refinement(args, generator) -> None:
    print(f"(b) full affinity, loss and gradient of Eq. 10: C = {CHANNELS}, R_C = {APPEARANCES}, R_S = {PARTS}, float32, median of {args.repeats}")
    print(f"{'HxW':>6} {'S':>5} | {'Eq.12':>9} {'W P~':>9} {'ratio':>6} {'printed':>9} {'ratio':>6} | {'form W':>8} | max rel diff")
    for height, width in FULL_CASES:
        Z, A, P = synthetic(height, width, generator)
        X = A.T @ Z
        low_rank = median_seconds(low_rank_refinement_loss_and_gradient, args.repeats, X, P)
        forming = median_seconds(lambda x: x.T @ x, args.repeats, X)
        W = X.T @ X
        dense = median_seconds(dense_eq11, args.repeats, W, P)
        printed = median_seconds(printed_eq11, 1, W, P)  # S^3: seconds at 64x64
        ours, reference = low_rank_refinement_loss_and_gradient(X, P)[1], printed_eq11(W.double(), P.double())[1]
        difference = ((ours.double() - reference).abs().max() / reference.abs().max()).item()
        print(
            f"{f'{height}x{width}':>6} {height * width:>5} | {low_rank * 1e3:>7.2f}ms {dense * 1e3:>7.2f}ms "
            f"{dense / low_rank:>5.1f}x {printed * 1e3:>7.0f}ms {printed / low_rank:>5.0f}x | {forming * 1e3:>6.1f}ms | {difference:.1e}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.speed.refinement_cost", description=__doc__.splitlines()[0])
    parser.add_argument("--neighbours", type=int, default=16)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.platform()}, {platform.processor() or platform.machine()}")
    generator = torch.Generator().manual_seed(0)
    sparse_refinement(args, generator)  # first, so that the peak RSS is its own
    full_refinement(args, generator)


if __name__ == "__main__":
    main()
