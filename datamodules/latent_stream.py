"""An endless, seeded stream of latent batches with random access by batch index.

Every sample has a global index and its own seed, derived from ``(seed, stream, index)``:
a run is reproducible, resumes exactly from a batch index, draws nothing from the global RNG,
and sees the same samples whatever the number of devices or workers for the same global batch.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import IterableDataset, get_worker_info

LatentSampler = Callable[[int, torch.Generator], Tensor]

TRAIN_STREAM = 0
HELD_OUT_STREAM = 1
PREVIEW_STREAM = 2
VALIDATION_STREAM = 3
POOL_DRAW_STREAM = 4  # the draws of an activation pool (seeded by step, not by sample)


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


class LatentStream(IterableDataset):
    """Yields ``(step, latents)`` for step ``start_step``, ``start_step + 1``, ...: the latents
    of the batch that ``joins_at(step)`` names (by default batch ``step``), or an empty tensor
    at a step where no batch joins (an activation pool's, :mod:`~panda_lightning.datamodules.pool`).

    Batch ``b`` on ``rank`` of ``world_size`` holds the samples with global indices
    ``(b * world_size + rank) * batch_size + j``, ``j < batch_size``: ranks never share a
    sample, and one device with batch ``2n`` sees what two devices with batch ``n`` see.
    DataLoader workers take steps in turn, and the DataLoader returns them in order.
    """

    def __init__(
        self,
        sampler: LatentSampler,
        batch_size: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        start_step: int = 0,
        stream: int = TRAIN_STREAM,
        joins_at: Callable[[int], int | None] | None = None,
    ):
        super().__init__()
        self.sampler = sampler
        self.batch_size = batch_size
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.start_step = start_step
        self.stream = stream
        self.joins_at = joins_at

    def batch(self, batch_index: int) -> Tensor:
        first = (batch_index * self.world_size + self.rank) * self.batch_size
        return latents_for(self.sampler, self.seed, self.stream, range(first, first + self.batch_size))

    def __iter__(self) -> Iterator[tuple[int, Tensor]]:
        worker = get_worker_info()
        worker_id, num_workers = (worker.id, worker.num_workers) if worker else (0, 1)
        for step in itertools.count(self.start_step + worker_id, num_workers):
            batch = step if self.joins_at is None else self.joins_at(step)
            yield step, torch.empty(0) if batch is None else self.batch(batch)
