"""Gaussian latents, for generators that do not sample their own."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


class GaussianLatents:
    """Latents ``z ~ N(0, I)`` of a fixed shape, drawn from a given ``torch.Generator``.

    Args:
        shape: shape of one latent, without the batch dimension (``[100, 1, 1]``).
    """

    def __init__(self, shape: Sequence[int]):
        if len(shape) == 0 or any(int(d) < 1 for d in shape):
            raise ValueError(f"shape={list(shape)} must be a non-empty list of positive sizes.")
        self.shape = tuple(int(d) for d in shape)

    def __call__(self, num_samples: int, generator: torch.Generator) -> Tensor:
        return torch.randn(num_samples, *self.shape, generator=generator)

    def __repr__(self) -> str:
        return f"GaussianLatents(shape={list(self.shape)})"
