"""An endless, seeded stream of latent batches with random access by batch index.

Each sample's latents come from its own seed (:func:`~panda_lightning.generators.latents.latents_for`):
the stream resumes exactly from a batch index and sees the same samples whatever the number of
devices or workers for the same global batch.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator

import torch
from torch import Tensor
from torch.utils.data import IterableDataset, get_worker_info

from panda_lightning.generators.latents import TRAIN_STREAM, LatentSampler, latents_for


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
