"""The activation pool: what it holds at a step is a function of the step, each position draws
from a held batch, two processes draw what one draws with their whole batch, a pool rebuilt at
a step goes on bit for bit, and pool_bytes sets its size; a pool of Gram matrices gives a whole
batch's, the sum of what two processes give, for the models that fit on them; validation
activations kept are the ones the generator gives."""

from __future__ import annotations

import itertools
from types import SimpleNamespace

import pytest
import torch

from panda_lightning import PandA
from panda_lightning.datamodules import GeneratorActivations
from panda_lightning.datamodules.pool import ActivationPool, PoolSchedule
from panda_lightning.functional.factorization import PositionsGram, positions_gram, unfold

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


def random_activations(batch_size: int, rank: int = 0):
    """``activations_of`` whose sample at global position ``p`` of batch ``b`` is seeded by ``(b, p)``."""

    def activations_of(batch: int) -> torch.Tensor:
        positions = range(rank * batch_size, (rank + 1) * batch_size)
        return torch.stack([torch.randn(3, 2, 4, generator=torch.Generator().manual_seed(1000 * batch + p)) for p in positions])

    return activations_of


@pytest.mark.parametrize("grams_per_step", [1, 2])
def test_a_pool_of_gram_matrices_sums_distinct_held_batches_and_two_processes_sum_to_one(grams_per_step):
    schedule = PoolSchedule(num_batches=3, fresh_every=2)
    pools = lambda rank, world_size, batch_size: ActivationPool(schedule, 3, rank, world_size, batch_size, grams_per_step)
    one, ranks = pools(0, 1, 6), [pools(rank, 2, 3) for rank in (0, 1)]
    grams = {b: positions_gram(unfold(random_activations(6)(b))) for b in range(8)}
    drawn = []
    for step in range(16):
        batch = one.batch(step, random_activations(6))
        held = schedule.held_at(step)
        size = min(grams_per_step, len(held))
        assert isinstance(batch, PositionsGram) and batch.num_samples == 6 * size and batch.gram.shape == (8, 8)
        sources = [c for c in itertools.combinations(held, size) if torch.allclose(sum(grams[b] for b in c), batch.gram)]
        assert len(sources) == 1  # the Gram matrices of `size` distinct held batches, summed
        drawn.append(sources[0])
        halves = [pool.batch(step, random_activations(3, rank)) for rank, pool in enumerate(ranks)]
        assert [half.num_samples for half in halves] == [3 * size] * 2
        torch.testing.assert_close(halves[0].gram + halves[1].gram, batch.gram)
    assert len(set(drawn[4:])) >= 4  # the draws spread over the batches held

    resumed = pools(0, 1, 6)
    for step in range(9, 16):
        torch.testing.assert_close(resumed.batch(step, random_activations(6)).gram, sum(grams[b] for b in drawn[step]), rtol=0, atol=0)


def test_the_pool_keeps_gram_matrices_for_a_model_that_fits_on_them(tiny_generator):
    class Fitting:
        global_rank, world_size, training, num_devices = 0, 1, True, 1
        strategy = SimpleNamespace(root_device=torch.device("cpu"))

        def __init__(self, model):
            self.lightning_module = model

    shape = (8, 8, 8)  # main.3: S = 64 positions, C = 8 channels
    for batch_size, appearance_rank, grams in [(8, None, True), (8, 5, False), (7, None, False)]:
        # (S = 64 <= N * C = 64 with a batch of 8; with 7 an S x S matrix outweighs the batch)
        datamodule = GeneratorActivations(tiny_generator, layer="main.3", batch_size=batch_size, pool_bytes=4 * 8 * SAMPLE_BYTES)
        datamodule.trainer = Fitting(PandA(shape, appearance_rank=appearance_rank))
        datamodule.setup("fit")  # where the model says what it takes
        datamodule.train_dataloader()
        assert datamodule.pools_grams() is grams and datamodule.pool.grams is grams
        assert datamodule.pool.grams_per_step == (4 if grams else None)
    datamodule.trainer = Fitting(torch.nn.Linear(1, 1))  # a model that says nothing: activations
    datamodule.setup("fit")
    assert not datamodule.pools_grams()


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
        ({"grams_per_step": 0}, "grams_per_step=0 must be a positive integer"),
    ],
)
def test_bad_pool_arguments_are_named(tiny_generator, kwargs, message):
    with pytest.raises(ValueError, match=message):
        GeneratorActivations(tiny_generator, layer="main.3", **kwargs)
