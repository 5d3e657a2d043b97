"""LowRankGAN and ReSeFa: latent directions that change a region of interest, from the
generator's Jacobians, as pure functions on tensors.

For each sample ``i``, with ``J_i = dG(z_i)/dz: (P, D)`` (``P`` pixels of every channel, ``D``
latent dimensions) and the region's mask ``M_i`` in ``[0, 1]`` over the pixels,

    A = sum_i J_i^T diag(M_i) J_i        (how moving z changes the region)
    B = sum_i J_i^T diag(1 - M_i) J_i    (how it changes the rest of the image)

both ``(D, D)``, from :func:`jacobian_grams`. Then

- **LowRankGAN** (Zhu et al., NeurIPS 2021, "Low-Rank Subspaces in GANs"): the rest's principal
  subspace, the leading eigenvectors of ``B`` that hold ``rest_energy`` of its trace, is what an
  edit of the region must not move; the directions are the leading eigenvectors of ``A``
  restricted to its orthogonal complement (the null space of the rest's low-rank part), ``P A P``
  with ``P = I - U U^T``. The paper first splits ``B`` into a low-rank and a sparse part by robust
  PCA; this simpler projection takes ``B``'s leading eigenvectors as its low-rank part.
- **ReSeFa** (Zhu et al., ICML 2022, "Region-Based Semantic Factorization in GANs"): the
  directions that maximise the generalised Rayleigh quotient ``v^T A v / v^T B v``, the
  generalised eigenvectors of ``(A, B + ridge I)``.

Directions are ``(num_directions, D)`` unit rows, best first, each with its largest entry
positive, as :mod:`benchmarks.evidence.locality.baselines` returns them.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor
from torch.func import jvp

from panda_lightning.functional.factorization import largest_entries_positive
from panda_lightning.functional.validation import check_float, check_int


def jacobian_grams(
    generate: Callable[[Tensor], Tensor], latents: Tensor, masks: Tensor, chunk: int = 4
) -> tuple[Tensor, Tensor]:
    """``(A, B)``, float64, of ``generate`` (latents ``(n, ...)`` -> images ``(n, C, H, W)``) at
    ``latents: (N, ...)``: ``(D, D)`` each for ``masks: (N, H, W)``, ``(R, D, D)`` for the ``R``
    regions of ``masks: (N, R, H, W)`` (each sample's Jacobian is computed once for all).

    Forward mode: each of ``chunk`` samples is repeated ``D`` times and pushed through with the
    ``D`` unit tangents, so one pass gives their Jacobians, ``chunk x D x P`` numbers at a time.
    ``generate`` must treat samples independently (a generator in eval mode does).
    """
    if masks.ndim not in (3, 4) or len(masks) != len(latents):
        raise ValueError(
            f"masks has shape {tuple(masks.shape)}; it must be (N, H, W) or (N, R, H, W) with N = {len(latents)}, "
            "one per latent."
        )
    check_int("chunk", chunk, low=1)
    regions = masks.unsqueeze(1) if masks.ndim == 3 else masks
    latent_shape, dim = latents.shape[1:], latents[0].numel()
    basis = torch.eye(dim, dtype=latents.dtype, device=latents.device).reshape(dim, *latent_shape)
    inside = torch.zeros(regions.shape[1], dim, dim, dtype=torch.float64, device=latents.device)
    total = torch.zeros(dim, dim, dtype=torch.float64, device=latents.device)
    for start in range(0, len(latents), chunk):
        points, weights = latents[start : start + chunk], regions[start : start + chunk]
        _, columns = jvp(generate, (points.repeat_interleave(dim, dim=0),),
                         (basis.repeat(len(points), *[1] * len(latent_shape)),))
        jacobians = columns.reshape(len(points), dim, columns.shape[1], -1).double()  # (n, D, C, P)
        total += _gram(jacobians)
        for region in range(regions.shape[1]):  # J^T diag(M) J = (sqrt(M) J)^T (sqrt(M) J), a matrix product
            inside[region] += _gram(jacobians * weights[:, region].flatten(1).double().sqrt()[:, None, None, :])
    outside = total - inside  # J^T diag(1 - M) J, the masks being the same over the channels
    return (inside[0], outside[0]) if masks.ndim == 3 else (inside, outside)


def _gram(jacobians: Tensor) -> Tensor:
    """``sum_n J_n^T J_n`` of ``jacobians: (n, D, C, P)``."""
    flat = jacobians.flatten(2)
    return torch.bmm(flat, flat.transpose(1, 2)).sum(dim=0)


def _check_grams(inside: Tensor, outside: Tensor, num_directions: int) -> int:
    if inside.ndim != 2 or inside.shape[0] != inside.shape[1] or inside.shape != outside.shape:
        raise ValueError(
            f"inside {tuple(inside.shape)} and outside {tuple(outside.shape)} must be the same (D, D) from jacobian_grams."
        )
    dim = inside.shape[0]
    check_int("num_directions", num_directions, low=1, high=dim, why=f"the latent has D = {dim} dimensions")
    return dim


def lowrankgan_directions(inside: Tensor, outside: Tensor, num_directions: int, rest_energy: float = 0.9) -> Tensor:
    """LowRankGAN's directions (the module's docstring): the leading eigenvectors of ``A`` in the
    null space of ``B``'s leading eigenvectors that hold ``rest_energy`` of its trace."""
    dim = _check_grams(inside, outside, num_directions)
    check_float("rest_energy", rest_energy, low=0.0, high=1.0, high_inclusive=False)
    values, vectors = torch.linalg.eigh(outside.double())  # ascending
    values, vectors = values.flip(0).clamp_min(0), vectors.flip(1)
    kept = int((values.cumsum(0) < rest_energy * values.sum()).sum()) + 1 if rest_energy > 0 else 0
    kept = min(kept, dim - num_directions)  # leave room for the directions asked for
    null = vectors[:, kept:]  # (D, D - kept): what leaves the rest's principal subspace still
    _, within = torch.linalg.eigh(null.T @ inside.double() @ null)
    return largest_entries_positive((null @ within.flip(1)[:, :num_directions]).T)


def resefa_directions(inside: Tensor, outside: Tensor, num_directions: int, ridge: float = 1e-6) -> Tensor:
    """ReSeFa's directions: the generalised eigenvectors of ``A v = lambda (B + r I) v``, largest
    ``lambda`` first, with ``r = ridge * trace(B) / D`` so that ``B`` need not be invertible."""
    dim = _check_grams(inside, outside, num_directions)
    check_float("ridge", ridge, low=0.0, low_inclusive=False)
    outside = outside.double()
    regularised = outside + ridge * outside.trace().clamp_min(torch.finfo(torch.float64).tiny) / dim * torch.eye(
        dim, dtype=torch.float64, device=outside.device
    )
    lower = torch.linalg.cholesky(regularised)
    whitened = torch.linalg.solve_triangular(lower, torch.linalg.solve_triangular(lower, inside.double(), upper=False).T,
                                             upper=False)  # L^-1 A L^-T
    _, vectors = torch.linalg.eigh((whitened + whitened.T) / 2)
    directions = torch.linalg.solve_triangular(lower.T, vectors.flip(1)[:, :num_directions], upper=True)  # L^-T u
    directions = directions / directions.norm(dim=0, keepdim=True)
    return largest_entries_positive(directions.T)
