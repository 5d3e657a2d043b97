"""A pool of recent training batches that each step draws its batch from.

The generator costs several times one step of Algorithm 1, and a streamed sample is used once.
The pool keeps the activations of the last ``K`` streamed batches on the device; each step
trains on a batch drawn from it, and a fresh batch replaces the oldest every ``fresh_every``
steps, so each sample serves about ``fresh_every`` steps and the generator runs that many
times less. The pool fills at that pace too: the first steps, which need many steps more
than many samples, run on the few batches there are.

What the pool holds at a step, and what the step draws, are functions of the step alone
(seeded by ``(seed, step)``): a resumed fit rebuilds the pool from the stream and continues
bit for bit, and a global batch drawn position by position is the same on any number of
devices (each holds its own positions of every batch, as the stream gives them).

With ``grams_per_step`` (a model with a full orthonormal basis, which needs only
``sum_i Z_i^T Z_i`` from a batch) the pool keeps each batch's positions' Gram matrix instead of
its activations, and a step draws that many whole pooled batches and sums their Gram matrices:
each is formed once, when its batch joins, and a step costs ``O(S^2 R_S)`` however many samples
it covers, instead of passes over a batch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from panda_lightning.generators.latents import POOL_DRAW_STREAM, sample_seed
from panda_lightning.functional.factorization import PositionsGram, positions_gram, unfold


@dataclass(frozen=True)
class PoolSchedule:
    """Which streamed batch joins the pool at each step, and which batches the pool holds.

    Batch ``b`` joins at step ``b * fresh_every`` and replaces batch ``b - num_batches``: the
    pool grows for its first ``num_batches * fresh_every`` steps, then holds the last
    ``num_batches``. ``PoolSchedule(1, 1)`` is plain streaming: batch ``t`` at step ``t``.

    Args:
        num_batches: ``K``, the batches the pool holds once full.
        fresh_every: steps between fresh batches.
    """

    num_batches: int = 1
    fresh_every: int = 1

    def joins_at(self, step: int) -> int | None:
        """The batch that joins the pool at ``step``, or ``None``."""
        batch, remainder = divmod(step, self.fresh_every)
        return batch if remainder == 0 else None

    def held_at(self, step: int) -> range:
        """The batches in the pool at ``step``, after that step's batch (if any) has joined."""
        joined = step // self.fresh_every + 1
        return range(max(0, joined - self.num_batches), joined)

    def slot(self, batch: int) -> int:
        """Where batch ``batch`` is kept (it replaces the batch ``num_batches`` before it)."""
        return batch % self.num_batches


class ActivationPool:
    """The activations of the batches :class:`PoolSchedule` says the pool holds, on one device.

    Args:
        schedule: the pool's schedule.
        seed: seed of the draws.
        rank, world_size: this process's place; it holds positions
            ``rank * batch_size ... (rank + 1) * batch_size - 1`` of every global batch.
        batch_size: samples per batch on this process.
        grams_per_step: ``None``: keep activations. Otherwise keep each batch's positions' Gram
            matrix ``sum_i Z_i^T Z_i`` (of this process's samples), and give a step the sum of
            the Gram matrices of this many distinct pooled batches (all of them while fewer are held).
    """

    def __init__(
        self, schedule: PoolSchedule, seed: int, rank: int, world_size: int, batch_size: int,
        grams_per_step: int | None = None,
    ):
        self.schedule, self.seed = schedule, seed
        self.rank, self.world_size, self.batch_size = rank, world_size, batch_size
        self.grams_per_step = grams_per_step
        # (K, batch_size, C, H, W), or with grams (K, S, S); allocated at the first batch
        self.stored: Tensor | None = None
        self.holds: list[int | None] = [None] * schedule.num_batches  # the batch in each slot

    def batch(self, step: int, activations_of: Callable[[int], Tensor]) -> Tensor | PositionsGram:
        """The training batch of ``step``: activations ``(batch_size, C, H, W)``, or with
        ``grams_per_step`` the :class:`PositionsGram` of that many pooled batches together.

        Args:
            activations_of: this process's activations of a streamed batch index; called for
                the batch that joins at ``step``, and after a resume for each batch the pool
                should hold and does not.
        """
        held = self.schedule.held_at(step)
        for batch in held:
            slot = self.schedule.slot(batch)
            if self.holds[slot] != batch:
                self._store(slot, activations_of(batch))
                self.holds[slot] = batch
        generator = torch.Generator().manual_seed(sample_seed(self.seed, POOL_DRAW_STREAM, step))
        if self.grams:  # whole batches, the same on every process
            drawn = torch.randperm(len(held), generator=generator)[: self.grams_per_step]
            slots = (held.start + drawn) % self.schedule.num_batches  # PoolSchedule.slot of each
            gram = self.stored[slots[0]] if len(slots) == 1 else self.stored.index_select(0, slots.to(self.stored.device)).sum(0)
            return PositionsGram(gram, self.batch_size * len(slots))
        if len(held) == 1:  # the first fresh_every steps: one batch, nothing to draw
            return self.stored[self.schedule.slot(held.start)]
        # One draw for the whole global batch, of which this process takes its positions.
        drawn = torch.randint(len(held), (self.world_size * self.batch_size,), generator=generator)
        mine = drawn[self.rank * self.batch_size : (self.rank + 1) * self.batch_size]
        slots = (held.start + mine) % self.schedule.num_batches  # PoolSchedule.slot, for every position
        rows = slots * self.batch_size + torch.arange(self.batch_size)
        return self.stored.flatten(0, 1).index_select(0, rows.to(self.stored.device))

    @property
    def grams(self) -> bool:
        """Whether the pool keeps Gram matrices rather than activations."""
        return self.grams_per_step is not None

    def _store(self, slot: int, activations: Tensor) -> None:
        if activations.shape[0] != self.batch_size:
            raise ValueError(f"a pooled batch has {activations.shape[0]} samples, the pool {self.batch_size}")
        if self.grams:
            activations = positions_gram(unfold(activations))
        if self.stored is None:
            self.stored = activations.new_empty((self.schedule.num_batches, *activations.shape))
        self.stored[slot].copy_(activations)
