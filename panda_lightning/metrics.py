"""The ROIR metric of locality (Eq. 13), as a function and a torchmetrics ``Metric``."""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics import Metric


def _roir_update(original: Tensor, edited: Tensor, mask: Tensor) -> tuple[Tensor, int]:
    """Sum over samples of ``||(1 - M) (X - X')|| / ||M (X - X')||``, and the number of samples.

    ``original``, ``edited``: images ``(N, C, H, W)``; ``mask``: the region of interest in
    ``[0, 1]``, ``(H, W)``, ``(N, H, W)`` or ``(N, 1, H, W)``, replicated over channels.
    """
    if original.shape != edited.shape or original.dim() != 4:
        raise ValueError(
            f"original {tuple(original.shape)} and edited {tuple(edited.shape)} must be images of one shape (N, C, H, W)."
        )
    height, width = original.shape[-2:]
    if mask.shape[-2:] != (height, width):
        raise ValueError(f"mask has shape {tuple(mask.shape)}; its last two sizes must be the images' ({height}, {width}).")
    mask = mask.to(original).reshape(-1, 1, height, width)
    change = edited - original
    outside = ((1 - mask) * change).flatten(1).norm(dim=1)
    inside = (mask * change).flatten(1).norm(dim=1)
    return (outside / inside).sum(), original.shape[0]


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
