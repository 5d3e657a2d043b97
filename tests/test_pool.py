"""The activation pool: what it holds at a step is a function of the step, each position draws
from a held batch, two processes draw what one draws with their whole batch, a pool rebuilt at
a step goes on bit for bit, and pool_bytes sets its size; validation activations kept are the
ones the generator gives."""

from __future__ import annotations

import pytest
import torch

from panda_lightning.datamodules import GeneratorActivations
from panda_lightning.datamodules.pool import ActivationPool, PoolSchedule

SAMPLE_BYTES = 8 * 8 * 8 * 4  # the tiny generator's main.3, float32


def marked(batch_size: int, rank: int = 0):
    """``activations_of`` whose sample at global position ``p`` of batch ``b`` holds ``1000 b + p``."""

    def activations_of(batch: int) -> torch.Tensor:
        positions = torch.arange(rank * batch_size, (rank + 1) * batch_size, dtype=torch.float64)
        return (1000 * batch + positions).view(-1, 1, 1, 1).expand(-1, 2, 3, 3).clone()

    return activations_of


def sources(batch: torch.Tensor) -> tuple[list[int], list[int]]:
    marks = batch[:, 0, 0, 0].long()
    return (marks // 1000).tolist(), (marks % 1000).tolist()


def test_streaming_uses_batch_t_at_step_t():
    schedule = PoolSchedule(1, 1)
    assert [schedule.joins_at(t) for t in range(4)] == [0, 1, 2, 3]
    assert [list(schedule.held_at(t)) for t in range(3)] == [[0], [1], [2]]


def test_a_fresh_batch_every_fresh_every_steps_replaces_the_oldest():
    schedule = PoolSchedule(num_batches=3, fresh_every=2)
    assert [schedule.joins_at(t) for t in range(8)] == [0, None, 1, None, 2, None, 3, None]
    assert [list(schedule.held_at(t)) for t in range(8)] == [[0], [0], [0, 1], [0, 1], [0, 1, 2], [0, 1, 2], [1, 2, 3], [1, 2, 3]]
    assert schedule.slot(3) == schedule.slot(0) != schedule.slot(1)  # batch 3 takes the oldest's place


def test_each_position_draws_from_a_held_batch_at_that_position():
    schedule = PoolSchedule(num_batches=4, fresh_every=2)
    pool = ActivationPool(schedule, seed=0, rank=0, world_size=1, batch_size=16)
    drawn = set()
    for step in range(24):
        batches, positions = sources(pool.batch(step, marked(16)))
        assert positions == list(range(16))
        assert set(batches) <= set(schedule.held_at(step))
        drawn.update(batches)
    assert drawn == set(range(12))  # every batch that joined was trained on
    # Two steps on the same held batches draw differently.
    assert sources(pool.batch(24, marked(16))) != sources(pool.batch(25, marked(16)))


def test_two_processes_draw_what_one_draws_with_their_whole_batch():
    schedule = PoolSchedule(num_batches=3, fresh_every=2)
    one = ActivationPool(schedule, seed=2, rank=0, world_size=1, batch_size=8)
    ranks = [ActivationPool(schedule, seed=2, rank=rank, world_size=2, batch_size=4) for rank in (0, 1)]
    for step in range(12):
        halves = [pool.batch(step, marked(4, rank)) for rank, pool in enumerate(ranks)]
        assert torch.equal(torch.cat(halves), one.batch(step, marked(8)))


def test_a_pool_rebuilt_at_a_step_goes_on_bit_for_bit_and_builds_only_what_it_holds():
    schedule = PoolSchedule(num_batches=3, fresh_every=2)
    whole = ActivationPool(schedule, seed=1, rank=0, world_size=1, batch_size=4)
    expected = [whole.batch(step, marked(4)) for step in range(14)]
    built = []

    def counted(batch):
        built.append(batch)
        return marked(4)(batch)

    resumed = ActivationPool(schedule, seed=1, rank=0, world_size=1, batch_size=4)
    for step in range(9, 14):
        assert torch.equal(resumed.batch(step, counted), expected[step])
    assert built == [2, 3, 4, 5, 6]  # held at step 9: 2, 3, 4; then 5 and 6 as they join


def test_pool_bytes_sets_the_pool_for_the_global_batch(tiny_generator):
    batch = 4 * SAMPLE_BYTES
    pool = GeneratorActivations(tiny_generator, layer="main.3", batch_size=4, pool_bytes=3 * batch + 100, fresh_every=5)
    assert pool.pool_schedule() == PoolSchedule(3, 5)
    for too_small in (0, 2 * batch - 1):
        streaming = GeneratorActivations(tiny_generator, layer="main.3", batch_size=4, pool_bytes=too_small)
        assert streaming.pool_schedule() == PoolSchedule(1, 1)

    class Rank:  # one of the two processes of a fit with a global batch of 8
        global_rank, world_size, training = 0, 2, True

    pool.trainer = Rank()
    assert pool.pool_schedule() == PoolSchedule(1, 1)  # 3 batches of 4 make 1 global batch of 8: too few


def test_kept_validation_activations_are_the_generators_and_computed_once(tiny_generator):
    calls = []
    tiny_generator.main[0].register_forward_hook(lambda *_: calls.append(1))  # (the pass stops at the layer)
    datamodule = GeneratorActivations(tiny_generator, layer="main.3", batch_size=4, val_samples=10)

    class Validating:
        global_rank, world_size, training = 0, 1, False

    datamodule.trainer = Validating()
    calls.clear()
    first = [datamodule.on_after_batch_transfer(batch, 0) for batch in datamodule.val_dataloader()]
    again = [datamodule.on_after_batch_transfer(batch, 0) for batch in datamodule.val_dataloader()]
    assert len(calls) == 3  # three batches, once
    recomputed = GeneratorActivations(tiny_generator, layer="main.3", batch_size=4, val_samples=10, keep_validation=False)
    recomputed.trainer = Validating()
    for a, b, c in zip(first, again, [recomputed.on_after_batch_transfer(batch, 0) for batch in recomputed.val_dataloader()], strict=True):
        assert torch.equal(a, b) and torch.equal(a, c)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"pool_bytes": -1}, r"pool_bytes=-1 must be a non-negative integer \(0: no pool"),
        ({"fresh_every": 0}, "fresh_every=0 must be a positive integer"),
    ],
)
def test_bad_pool_arguments_are_named(tiny_generator, kwargs, message):
    with pytest.raises(ValueError, match=message):
        GeneratorActivations(tiny_generator, layer="main.3", **kwargs)
