"""The paper's ablation (Sec. 5.4, Fig. 10) with numbers: which of PandA's choices make its parts local.

    python -m benchmarks.evidence.ablations [--layer main.8] [--parts 8] [--steps 500] [--quick] [--picture docs/ablations.png]

On the same activations of the README's face generator and at the same ``R_S`` it fits:

- ``MPCA 3-way``: HOSVD of the ``C x H x W`` tensor; the parts are the ``R_S`` outer products
  of the leading eigenvectors of the rows' and the columns' scatter (separable spatial modes)
  with the largest products of eigenvalues.
- ``MPCA unfolded``: HOSVD of the unfolded ``C x S`` tensor; the parts are the leading ``R_S``
  eigenvectors of ``sum_i Z_i^T Z_i`` (orthonormal, of any sign).
- ``no P >= 0``: Algorithm 1 without the ``max(0, .)`` on ``P`` (``R_C = C``).
- ``A steps, R_C = C/4``: Algorithm 1 as written, with a projected gradient step on ``A``.
- ``PandA``: Algorithm 1 as ``panda fit`` runs it (``R_C = C``, ``P >= 0``).

Each from the same initialisation (HOSVD appearances, the same random parts) and on the same
training samples. For each it prints the held-out relative error and three measures of how local
the parts are (docs/measurements.md, "Ablations", defines them): the parts' mean pairwise
``overlap``, their ``concentration`` in their top tenth of positions, and the ``edit ratio``:
how much more an edit at a part changes the image inside the part's region than outside.
``--picture`` writes Fig. 10's layout: one row of parts per variant, on one sample.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass

import torch
from torch import Tensor

from panda_lightning import PandA
from panda_lightning.app import EditRequest, Editor
from panda_lightning.datamodules import GeneratorActivations
from panda_lightning.functional.algorithm import GramRelativeError, RelativeReconstructionError, StepSizes, algorithm_1_step
from panda_lightning.functional.factorization import (
    channel_scatter,
    hosvd_appearances,
    parts_scale_terms,
    positions_gram,
    project_nonnegative_,
    random_parts,
    reconstruct,
    scaled_initial_parts,
    unfold,
)
from panda_lightning.generators import PhotoFaceDCGAN
from panda_lightning.callbacks.rendering import generated_cells
from panda_lightning.images import part_masks, parts_columns, save_png, tile

LR = 8.0  # PandA's default model.lr
TOP_SHARE = 0.1  # concentration: the share of a part's energy in this fraction of the positions


@dataclass
class Variant:
    """A fitted variant: ``A: (C, R_C)``, ``P: (S, R_S)``."""

    name: str
    appearances: Tensor
    parts: Tensor


# -- the variants ------------------------------------------------------------------------------


def leading_eigenvectors(scatter: Tensor, rank: int) -> tuple[Tensor, Tensor]:
    """The ``rank`` leading eigenvalues and eigenvectors ``(D, rank)`` of a symmetric PSD matrix."""
    values, vectors = torch.linalg.eigh(scatter.double())
    order = values.argsort(descending=True)[:rank]
    return values[order], vectors[:, order]


def mpca_three_way(activations: Tensor, rank: int) -> Tensor:
    """Separable parts ``(H W, R_S)``: outer products ``u_h v_w^T`` of the leading eigenvectors of
    the rows' scatter ``sum_{i,c} Z_ic Z_ic^T`` and the columns' ``sum_{i,c} Z_ic^T Z_ic`` (each
    ``Z_ic`` an ``H x W`` map), the ``rank`` with the largest products of eigenvalues."""
    _, _, height, width = activations.shape
    maps = activations.double().flatten(0, 1)  # (N C, H, W)
    row_values, rows = leading_eigenvectors(torch.einsum("nhw,ngw->hg", maps, maps), height)
    column_values, columns = leading_eigenvectors(torch.einsum("nhw,nhv->wv", maps, maps), width)
    products = (row_values[:, None] * column_values[None, :]).flatten()
    chosen = products.argsort(descending=True)[:rank]
    outer = torch.einsum("ha,wb->abhw", rows, columns).reshape(height * width, height, width)  # (H W pairs, H, W)
    return outer[chosen].reshape(rank, height * width).T.float()


def mpca_unfolded(gram: Tensor, rank: int) -> Tensor:
    """The leading ``rank`` eigenvectors of the positions' scatter ``sum_i Z_i^T Z_i``, ``(S, R_S)``."""
    return leading_eigenvectors(gram, rank)[1].float()


def algorithm_1(
    train: Tensor, A: Tensor, P: Tensor, steps: int, nonnegative: bool = True, appearance_steps: bool = False, batch_size: int = 128
) -> tuple[Tensor, Tensor]:
    """Algorithm 1 from ``(A, P)`` for ``steps`` iterations on ``train: (N, C, S)``: on its whole
    Gram matrix when there is no A step, on batches of ``batch_size`` samples in turn otherwise."""
    sizes, largest = StepSizes(LR, LR if appearance_steps else None), StepSizes(LR, LR)
    whole = None if appearance_steps else GramRelativeError(positions_gram(train))
    project = project_nonnegative_ if nonnegative else None
    for step in range(steps):
        start = (step * batch_size) % train.shape[0]
        objective = whole if whole is not None else RelativeReconstructionError(train[start : start + batch_size])
        iteration = algorithm_1_step(objective, A, P, sizes, largest, project_parts=project)
        P, sizes = iteration.parts, iteration.step_sizes
        A = A if whole is not None else iteration.appearances
    return A, P


def initial_factors(train: Tensor, parts: int, seed: int = 0) -> tuple[Tensor, Tensor]:
    """PandA's start on ``train: (N, C, S)``: the HOSVD appearances ``(C, C)`` and random parts
    ``(S, R_S)``, scaled back where they fit worse than none (as ``PandA`` initialises)."""
    channels, positions = train.shape[1:]
    initial = random_parts(positions, parts, torch.Generator().manual_seed(seed))
    return hosvd_appearances(channel_scatter(train), channels), scaled_initial_parts(initial, parts_scale_terms(train, initial))


def variants(maps: Tensor, parts: int, steps: int, seed: int = 0) -> list[Variant]:
    """Every variant of the ablation fitted on activations ``maps: (N, C, H, W)``."""
    train = unfold(maps)
    A, P = initial_factors(train, parts, seed)
    few = A[:, : train.shape[1] // 4].clone()
    return [
        Variant("MPCA 3-way", A, mpca_three_way(maps, parts)),
        Variant("MPCA unfolded", A, mpca_unfolded(positions_gram(train), parts)),
        Variant("no P >= 0", A, algorithm_1(train, A, P.clone(), steps, nonnegative=False)[1]),
        Variant("A steps, R_C = C/4", *algorithm_1(train, few, P.clone(), steps, appearance_steps=True)),
        Variant("PandA", A, algorithm_1(train, A, P.clone(), steps)[1]),
    ]


# -- the measures -------------------------------------------------------------------------------


def relative_error(Z: Tensor, variant: Variant) -> float:
    """``sum_i ||Z_i - A (A^T Z_i P) P^T||^2 / sum_i ||Z_i||^2`` on held-out ``Z: (N, C, S)``."""
    return ((Z - reconstruct(Z, variant.appearances, variant.parts)).square().sum() / Z.square().sum()).item()


def overlap(P: Tensor) -> float:
    """The mean cosine similarity of ``|p_k|`` and ``|p_l|`` over pairs ``k != l``: 0 when the parts
    are disjoint, 1 when they are one."""
    unit = P.abs() / P.abs().norm(dim=0).clamp_min(1e-12)
    cosines = unit.T @ unit
    count = P.shape[1]
    return ((cosines.sum() - cosines.diagonal().sum()) / (count * (count - 1))).item()


def concentration(P: Tensor, share: float = TOP_SHARE) -> float:
    """The mean over parts of the fraction of ``||p_k||^2`` in its ``share`` of positions where
    ``|p_k|`` is largest: ``share`` for a part spread evenly, 1 for a part within them."""
    top = max(1, round(share * P.shape[0]))
    energy = P.square()
    return (energy.topk(top, dim=0).values.sum(0) / energy.sum(0).clamp_min(1e-12)).mean().item()


def edit_ratios(datamodule: GeneratorActivations, variant: Variant, scale: float, seeds: range) -> list[float]:
    """For each part and sample: the mean change of the image inside the part's region (where it
    is the strongest part) over the mean change outside, for an edit at the part (``|p_k| / max``)
    with the appearance that samples differ most along there (as ``panda app``'s gallery) at
    ``alpha = 1``."""
    channels, height, width = datamodule.feature_shape
    model = PandA((channels, height, width), layer=datamodule.layer, parts_rank=variant.parts.shape[1],
                  appearance_rank=variant.appearances.shape[1])
    model.appearances.data.copy_(variant.appearances)
    model.parts.data.copy_(variant.parts.abs())  # a part of either sign edits where it is large
    model.activation_scale.fill_(scale)
    editor = Editor(model.eval(), datamodule.generator, ranking_samples=64, gallery_size=1)
    ratios = []
    for seed in seeds:
        image = editor.sample(seed).image
        regions = part_masks(model.parts.detach(), height, width, tuple(image.shape[1:])).argmax(0)
        for part in range(model.parts.shape[1]):
            inside = regions == part
            if inside.all() or not inside.any():
                continue
            ((appearance, _),) = editor.ranked_appearances(EditRequest(seed=seed, part=part))
            edited, _ = editor.edit(EditRequest(seed=seed, part=part, appearance=appearance, alpha=1.0))
            change = (edited - image.cpu()).abs().sum(0)
            ratios.append((change[inside].mean() / change[~inside].mean().clamp_min(1e-12)).item())
    return ratios


def picture(datamodule: GeneratorActivations, fitted: list[Variant], seed: int = 0) -> Tensor:
    """Fig. 10's layout: one row per variant, the sample, its parts, each part over it (``|p_k|``)."""
    _, height, width = datamodule.feature_shape
    image = generated_cells(datamodule.generator, datamodule.generator.preview_latents(1, seed))
    rows = [parts_columns(image, variant.parts.abs(), height, width) for variant in fitted]
    cells = torch.cat([cells for cells, _, _ in rows])
    _, labels, colours = rows[0]
    return tile(cells, rows=[variant.name for variant in fitted], columns=labels, column_colours=colours)


def face_activations(layer: str, train_samples: int, test_samples: int) -> tuple[GeneratorActivations, Tensor, Tensor, float]:
    """The README's face generator at ``layer``; training activations ``(N, C, H, W)`` (its held-out
    stream), test activations unfolded ``(N', C, S)`` (another stream), and PandA's unit of edit
    strengths, the RMS norm of a position's activations."""
    datamodule = GeneratorActivations(PhotoFaceDCGAN(), layer=layer, batch_size=64)
    maps = torch.cat([datamodule.generator.activations(datamodule.generator.held_out_latents(range(start, min(start + 64, train_samples))))
                      for start in range(0, train_samples, 64)])
    test_latents = datamodule.generator.preview_latents(test_samples, seed=1)
    test = unfold(torch.cat([datamodule.generator.activations(test_latents[start : start + 64]) for start in range(0, test_samples, 64)]))
    return datamodule, maps, test, maps.square().sum(1).mean().sqrt().item()


# A small run of the ablation or the rank sweep: 50 steps, 256 + 64 samples, 2 edited samples.
QUICK = {"steps": 50, "train_samples": 256, "test_samples": 64, "edit_samples": 2}


def add_fit_arguments(parser: argparse.ArgumentParser, edit_samples: int) -> None:
    """The options that the ablation and the rank sweep share: the layer, Algorithm 1's steps and the samples."""
    parser.add_argument("--layer", default="main.8")
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--train_samples", type=int, default=1024)
    parser.add_argument("--test_samples", type=int, default=256)
    parser.add_argument("--edit_samples", type=int, default=edit_samples)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.evidence.ablations", description=__doc__.splitlines()[0])
    add_fit_arguments(parser, edit_samples=16)
    parser.add_argument("--parts", type=int, default=8)
    parser.add_argument("--quick", action="store_true", help="a small run: 50 steps, 256 + 64 samples, 2 edited samples")
    parser.add_argument("--picture", help="write Fig. 10's layout to this PNG")
    args = parser.parse_args(argv)
    if args.quick:
        vars(args).update(QUICK)

    datamodule, maps, test, scale = face_activations(args.layer, args.train_samples, args.test_samples)
    print(f"PhotoFaceDCGAN {args.layer} {tuple(maps.shape[1:])}: {args.parts} parts, {args.train_samples} training and "
          f"{args.test_samples} test samples, {args.steps} steps of Algorithm 1, edits of {args.edit_samples} samples")
    start = time.perf_counter()
    fitted = variants(maps, args.parts, args.steps)
    print(f"fitted in {time.perf_counter() - start:.1f} s")
    print(f"{'variant':20} {'error':>7} {'overlap':>8} {'concentration':>14} {'edit ratio':>11}")
    for variant in fitted:
        ratios = edit_ratios(datamodule, variant, scale, range(args.edit_samples))
        print(f"{variant.name:20} {relative_error(test, variant):7.4f} {overlap(variant.parts):8.3f} "
              f"{concentration(variant.parts):14.3f} {statistics.median(ratios):11.2f}")
    if args.picture:
        print(f"wrote {save_png(picture(datamodule, fitted), args.picture)}")


if __name__ == "__main__":
    main()
