"""Uses of the learnt factors (paper Sec. 3.3.1 and 5.1-5.6) as pure functions on tensors.

``Z: (N, C, H, W)`` are activations at the factorised layer, ``A: (C, R_C)`` the appearances
and ``P: (H * W, R_S)`` the parts. Every function checks the indices and strengths it is
handed, since these come straight from a user.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from einops import einsum, rearrange
from torch import Tensor

from panda_lightning.functional.validation import check_float, check_index


def mask_at_layer(mask: Tensor, height: int, width: int, name: str = "mask") -> Tensor:
    """A hand-drawn ``mask`` at the layer's ``(H, W)``: as it is, or averaged down from a
    resolution ``k`` times the layer's, such as the image's. One mask ``(H', W')`` for every
    sample, or one per sample ``(N, H', W')``."""
    mask = torch.as_tensor(mask)
    size = tuple(mask.shape[-2:])
    if mask.ndim not in (2, 3) or size[0] % height or size[1] % width or size[0] // height != size[1] // width:
        raise ValueError(
            f"{name} has shape {tuple(mask.shape)}; it must be the layer's (H, W) = ({height}, {width}) or a "
            f"whole multiple of it, such as the image's ({height} k, {width} k), with a leading sample "
            "dimension N if each sample has its own."
        )
    if size == (height, width):
        return mask if mask.is_floating_point() else mask.float()
    per_sample = mask.float() if mask.ndim == 3 else mask.float()[None]
    resized = torch.nn.functional.interpolate(per_sample[:, None], size=(height, width), mode="area")[:, 0]
    return resized if mask.ndim == 3 else resized[0]


def part_mask(P: Tensor, part: int, height: int, width: int) -> Tensor:
    """The normalised part ``p_k / max(p_k)`` of Sec. 3.3.1 as a mask in ``[0, 1]``: ``(H, W)``
    for the global parts ``P: (S, R_S)``, ``(N, H, W)`` for refined parts ``P~: (N, S, R_S)``."""
    check_index("part", part, P.shape[-1], "parts")
    column = P[..., part]
    scaled = column / column.amax(-1, keepdim=True).clamp_min(torch.finfo(column.dtype).tiny)
    return rearrange(scaled, "... (h w) -> ... h w", h=height, w=width)


def local_edit(Z: Tensor, A: Tensor, edits: Sequence[tuple[Tensor, int, float]]) -> Tensor:
    """``Z + sum_t alpha_t a_{j_t} m_t^T / ||a_{j_t}||`` (Sec. 3.3.1): appearance ``j_t`` added where
    mask ``m_t`` is, as a unit vector (the paper's appearances are column-orthonormal).

    Args:
        Z: activations ``(N, C, H, W)``.
        A: appearances ``(C, R_C)``.
        edits: ``(mask, appearance, alpha)`` triples; ``mask`` is a part from :func:`part_mask`
            (global, or each sample's refined part ``(N, H, W)``) or a hand-drawn mask at the
            layer's ``(H, W)`` or a whole multiple of it (the image's), ``alpha`` the strength
            in the activations' units: the length of the vector added where the mask is 1.

    Returns:
        The edited activations, ``(N, C, H, W)``; ``Z`` is not changed.
    """
    samples, _, height, width = Z.shape
    edited = Z.clone()
    for t, (mask, appearance, alpha) in enumerate(edits):
        check_index(f"edits[{t}] appearance", appearance, A.shape[1], "appearances")
        check_float(f"edits[{t}] alpha", alpha)
        mask = mask_at_layer(mask, height, width, f"edits[{t}] mask")
        if mask.ndim == 3 and mask.shape[0] != samples:
            raise ValueError(f"edits[{t}] mask holds {mask.shape[0]} samples' masks for {samples} samples.")
        # A unit vector, so that alpha is a length in the activations' units whatever A's scale.
        direction = A[:, appearance] / A[:, appearance].norm().clamp_min(torch.finfo(A.dtype).tiny)
        # (H, W) broadcasts over samples; (N, H, W) gives each sample its own.
        edited += alpha * direction[:, None, None] * mask.to(Z)[..., None, :, :]
    return edited


def saliency_maps(Z: Tensor, A: Tensor) -> Tensor:
    """``m_ik = a_k^T Z_i`` (Sec. 5.1.2): how much of each appearance is at each position.

    Returns:
        ``(N, R_C, H, W)``.
    """
    return einsum(A, Z, "c r, n c h w -> n r h w")


def saliency_sums(Z: Tensor, A: Tensor) -> tuple[Tensor, int]:
    """Sums of each appearance's saliency over samples and positions, and their count, so that
    the localisation thresholds ``mu_k`` (the mean saliency) accumulate batch by batch."""
    return saliency_maps(Z, A).sum(dim=(0, 2, 3)), Z.shape[0] * Z.shape[2] * Z.shape[3]


def mean_saliency(batches: Iterable[Tensor], A: Tensor) -> Tensor:
    """``mu_k``: each appearance's saliency averaged over the samples of ``batches`` (each
    ``(N, C, H, W)``) and their positions (Sec. 5.1.2), ``(R_C,)``, the thresholds of :func:`localise`."""
    sums, count = torch.zeros(A.shape[1], device=A.device, dtype=A.dtype), 0
    for Z in batches:
        batch_sums, batch_count = saliency_sums(Z, A)
        sums, count = sums + batch_sums, count + batch_count
    return sums / count


def localise(saliency: Tensor, thresholds: Tensor) -> Tensor:
    """The binary localisation ``m_ik >= mu_k`` (Sec. 5.1.2).

    Args:
        saliency: ``(N, R_C, H, W)`` from :func:`saliency_maps`.
        thresholds: ``mu: (R_C,)``, each appearance's mean saliency over a dataset.
    """
    return saliency >= thresholds.view(1, -1, 1, 1)


def rewrite_concept(Z: Tensor, A: Tensor, source: int, target: int, alpha: float = 1.0) -> Tensor:
    """Replace concept ``source`` by concept ``target`` wherever it is present (Eq. 14-16).

    In the least-squares coefficients ``Zhat = A^+ Z`` of the fibres in the appearances (the
    paper's ``A^T Z``, equal for a column-orthonormal ``A``) the positive part of row ``source``
    moves (times ``alpha``) to row ``target``, its negative part stays. Only that change is mapped back, ``Z' = Z + (alpha a_t - a_s) [zhat_s]^+``, so what
    ``A`` does not span is kept: this is Eq. 16 when ``A`` is a full orthogonal basis
    (``Z = A A^T Z``), and for any ``A`` it leaves ``Z`` as it is when ``source = target`` and
    ``alpha = 1``, and wherever ``zhat_s <= 0``.

    Returns:
        The rewritten activations, ``(N, C, H, W)``; ``Z`` is not changed.
    """
    rank = A.shape[1]
    check_index("source", source, rank, "appearances")
    check_index("target", target, rank, "appearances")
    alpha = check_float("alpha", alpha)
    # Only row `source` of Zhat = A^+ Z is needed.
    present = einsum(torch.linalg.pinv(A)[source], Z, "c, n c h w -> n h w").clamp(min=0)
    return Z + einsum(alpha * A[:, target] - A[:, source], present, "c, n h w -> n c h w")


def appearance_scores(Z: Tensor, A: Tensor, appearance: int, P: Tensor | None = None) -> Tensor:
    """How much of ``appearance`` each sample holds: ``r_ij = a_j^T Z_i 1`` (Eq. 17), or with
    parts ``P`` at each part: ``r_ijk = a_j^T Z_i p_k`` (Eq. 18).

    Returns:
        ``(N,)`` without ``P``; ``(N, R_S)`` with it.
    """
    check_index("appearance", appearance, A.shape[1], "appearances")
    saliency = rearrange(einsum(A[:, appearance], Z, "c, n c h w -> n h w"), "n h w -> n (h w)")
    return saliency.sum(dim=1) if P is None else saliency @ P


def appearance_spread(saliency: Tensor, region: Tensor) -> Tensor:
    """How much samples differ along each appearance at a region: the standard deviation over
    samples of the region's mean saliency, Eq. 18's score ``a_j^T Z_i m`` at a unit ``a_j`` and a
    region ``m`` scaled to sum to 1. Ranks the appearances worth editing at a part or a mask.

    Args:
        saliency: ``(N, R_C, H, W)``, :func:`saliency_maps` of unit appearances.
        region: ``(H, W)``, or one per sample ``(N, H, W)``, in ``[0, 1]`` at the layer.

    Returns:
        ``(R_C,)``.
    """
    if region.shape[-2:] != saliency.shape[-2:] or region.ndim not in (2, 3):
        raise ValueError(
            f"region has shape {tuple(region.shape)}; it must be (H, W) or (N, H, W) with (H, W) = "
            f"{tuple(saliency.shape[-2:])}, the saliency maps' positions."
        )
    weights = region / region.sum(dim=(-2, -1), keepdim=True).clamp_min(torch.finfo(region.dtype).tiny)
    pattern = "n r h w, h w -> n r" if region.ndim == 2 else "n r h w, n h w -> n r"
    return einsum(saliency, weights, pattern).std(dim=0)


def border_mask(height: int, width: int, thickness: int | None = None) -> Tensor:
    """``(H, W)`` boolean ring of ``thickness`` positions (default an eighth of the shorter side)."""
    thickness = thickness or max(1, min(height, width) // 8)
    mask = torch.ones(height, width, dtype=torch.bool)
    mask[thickness:-thickness, thickness:-thickness] = False
    return mask


def remove_object(Z: Tensor, mask: Tensor, border: Tensor) -> Tensor:
    """Remove what is at ``mask`` by filling it with each sample's own background (Sec. 5.2).

    The paper adds a "background" appearance chosen by eye. Here each sample's background is
    its mean activation over the ``border`` positions (where a centred generator puts the
    background), and the masked positions are moved to it: ``Z' = (1 - m) Z + m z_bg``. A
    global appearance cannot match every sample's background; the sample's own border can.

    Args:
        Z: activations ``(N, C, H, W)``.
        mask: ``(H, W)`` or per sample ``(N, H, W)``, in ``[0, 1]``: a part from
            :func:`part_mask` or a hand-drawn mask.
        border: ``(H, W)`` booleans, from :func:`border_mask`.
    """
    height, width = Z.shape[-2:]
    if tuple(border.shape) != (height, width):
        raise ValueError(f"border has shape {tuple(border.shape)}; it must be the layer's (H, W) = ({height}, {width}).")
    background = Z[..., border.to(Z.device)].mean(-1)[..., None, None]  # (N, C, 1, 1)
    mask = mask_at_layer(mask, height, width).to(Z)[..., None, :, :]
    return Z * (1 - mask) + background * mask
