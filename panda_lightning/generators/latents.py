"""A generator's latents: how each sample's are drawn, reproducibly, and Gaussian latents for
generators that do not sample their own.

Every sample has a global index in a stream and its own seed, derived from ``(seed, stream,
index)``: a run is reproducible, resumes exactly, draws nothing from the global RNG, and sees the
same samples whatever the number of devices or workers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np
import torch
from torch import Tensor, nn

LatentSampler = Callable[[int, torch.Generator], Tensor]  # (num_samples, generator) -> latents

TRAIN_STREAM = 0
HELD_OUT_STREAM = 1
PREVIEW_STREAM = 2
VALIDATION_STREAM = 3
POOL_DRAW_STREAM = 4  # the draws of an activation pool (seeded by step, not by sample)


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


def latent_sampler(network: nn.Module, latents: LatentSampler | None = None) -> LatentSampler:
    """``latents``, or else the network's own ``sample_latents``."""
    if latents is not None:
        return latents
    if callable(getattr(network, "sample_latents", None)):
        return network.sample_latents
    raise ValueError(
        f"latents=None, and {type(network).__name__} has no sample_latents method: pass "
        "latents=GaussianLatents(shape=[...]) with the shape of one latent."
    )


def sample_seed(seed: int, stream: int, index: int) -> int:
    """A well-mixed 63-bit seed for sample ``index`` of ``stream`` (NumPy's ``SeedSequence``)."""
    state = np.random.SeedSequence([seed, stream, index]).generate_state(2, dtype=np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


def latents_for(sampler: LatentSampler, seed: int, stream: int, indices: Iterable[int]) -> Tensor:
    """The latents of the samples with global ``indices``, stacked along dimension 0."""
    generator = torch.Generator()
    return torch.cat(
        [sampler(1, generator.manual_seed(sample_seed(seed, stream, i))) for i in indices]
    )
