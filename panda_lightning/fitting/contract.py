"""What a fit's model and its data tell each other, once, at set-up.

Lightning calls the DataModule's ``setup`` first, then the module's. In them:

- the data ask the model whether it takes a training batch as its positions' Gram matrix
  ``sum_i Z_i^T Z_i`` (:func:`takes_positions_grams`: PandA with ``R_C = C``), and then pool
  those rather than activations;
- the model takes from the data the held-out activations it initialises its appearances on
  (:class:`HeldOutActivations`: ``GeneratorActivations`` gives them).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol, runtime_checkable

from torch import Tensor


@runtime_checkable
class HeldOutActivations(Protocol):
    """Data that give activations of held-out samples, split over the devices."""

    def held_out_batches(self, num_samples: int) -> Iterator[Tensor]:
        """``num_samples`` held-out samples' activations ``(n, C, H, W)`` in all, batch by batch."""


def takes_positions_grams(model: Any) -> bool:
    """Whether ``model`` fits on a batch's positions' Gram matrix alone (its ``fits_on_positions_gram``)."""
    return bool(getattr(model, "fits_on_positions_gram", False))
