"""The metrics of a fit and its uses: the relative error and ROIR (Eq. 13), as functions and torchmetrics ``Metric``s."""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics import Metric

from panda_lightning.functional.factorization import reconstruct


def _check_images_and_region(original: Tensor, edited: Tensor, mask: Tensor) -> Tensor:
    """The region ``mask`` as ``(N or 1, 1, H, W)``, after checking it fits the images."""
    if original.shape != edited.shape or original.dim() != 4:
        raise ValueError(
            f"original {tuple(original.shape)} and edited {tuple(edited.shape)} must be images of one shape (N, C, H, W)."
        )
    height, width = original.shape[-2:]
    if mask.shape[-2:] != (height, width):
        raise ValueError(f"mask has shape {tuple(mask.shape)}; its last two sizes must be the images' ({height}, {width}).")
    return mask.to(original).reshape(-1, 1, height, width)


def roir_ratios(original: Tensor, edited: Tensor, mask: Tensor) -> Tensor:
    """Each sample's ``||(1 - M) (X - X')|| / ||M (X - X')||``, the terms of Eq. 13: ``(N,)``.

    ``original``, ``edited``: images ``(N, C, H, W)``; ``mask``: the region of interest in
    ``[0, 1]``, ``(H, W)``, ``(N, H, W)`` or ``(N, 1, H, W)``, replicated over channels.
    """
    mask = _check_images_and_region(original, edited, mask)
    change = edited - original
    outside = ((1 - mask) * change).flatten(1).norm(dim=1)
    inside = (mask * change).flatten(1).norm(dim=1)
    return outside / inside


def region_change(original: Tensor, edited: Tensor, mask: Tensor) -> Tensor:
    """Each sample's root-mean-square change inside the region: ``||M (X - X')|| / sqrt(C sum M)``,
    ``(N,)``, in the images' units. Edits compared by ROIR are set to change this equally."""
    mask = _check_images_and_region(original, edited, mask)
    inside = (mask * (edited - original)).flatten(1).norm(dim=1)
    area = mask.expand(-1, original.shape[1], -1, -1).flatten(1).sum(dim=1)
    return inside / area.clamp_min(torch.finfo(area.dtype).tiny).sqrt()


def _roir_update(original: Tensor, edited: Tensor, mask: Tensor) -> tuple[Tensor, int]:
    """Sum over samples of the ROIR terms, and the number of samples."""
    return roir_ratios(original, edited, mask).sum(), original.shape[0]


def roir(original: Tensor, edited: Tensor, mask: Tensor) -> Tensor:
    """ROIR (Eq. 13): the mean over samples of the change outside the region of interest over
    the change inside it. Lower is more local; an edit that changes only the region scores 0."""
    total, count = _roir_update(original, edited, mask)
    return total / count


class ROIR(Metric):
    """ROIR (Eq. 13) over batches and devices: ``mean_i ||(1-M)(X_i - X'_i)|| / ||M (X_i - X'_i)||``.

    Example:
        >>> metric = ROIR()
        >>> original = torch.zeros(2, 3, 4, 4)
        >>> mask = torch.zeros(4, 4); mask[:2] = 1
        >>> metric.update(original, original + mask, mask)
        >>> metric.compute()
        tensor(0.)
    """

    is_differentiable = False
    higher_is_better = False
    full_state_update = False

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.add_state("ratio_sum", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, original: Tensor, edited: Tensor, mask: Tensor) -> None:
        total, count = _roir_update(original, edited, mask)
        self.ratio_sum += total.double()
        self.count += count

    def compute(self) -> Tensor:
        return (self.ratio_sum / self.count).float()


def _sum_of_squares(Z: Tensor) -> Tensor:
    # Each sample's norm in Z's dtype (a blocked reduction: ~1e-7 relative in float32), summed
    # over samples in float64; a float64 reduction over all of Z is 10x slower on CPU.
    return torch.linalg.vector_norm(Z.flatten(1), dim=1).double().square().sum()


class RelativeError(Metric):
    """PandA's relative reconstruction error over batches and devices (Eq. 3 over the energy):
    ``sum_i ||Z_i - A (A^T Z_i P) P^T||_F^2 / sum_i ||Z_i||_F^2``.

    The residual is formed explicitly (:func:`panda_lightning.functional.factorization.reconstruct`), so
    the error stays accurate near a perfect fit, where the expanded form of the training loss
    cancels in float32.

    Example:
        >>> metric = RelativeError()
        >>> A, P = torch.eye(2), torch.tensor([[1.0], [0.0]])
        >>> metric.update(torch.tensor([[[3.0, 4.0], [0.0, 0.0]]]), A, P)
        >>> metric.compute()
        tensor(0.6400)
    """

    is_differentiable = False
    higher_is_better = False
    full_state_update = False

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.add_state("residual", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("energy", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, Z: Tensor, A: Tensor, P: Tensor) -> None:
        """``Z: (N, C, S)``, ``A: (C, R_C)``, ``P: (S, R_S)``."""
        self.residual += _sum_of_squares(reconstruct(Z, A, P).sub_(Z))
        self.energy += _sum_of_squares(Z)

    def compute(self) -> Tensor:
        return (self.residual / self.energy).float()
