"""Stream activations of a frozen generator at one layer, batch after batch, without end."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import lightning as L
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor, nn
from torch.utils.data import DataLoader

from panda_lightning.datamodules.latent_stream import LatentStream
from panda_lightning.datamodules.memory import check_fits
from panda_lightning.datamodules.pool import ActivationPool, PoolSchedule
from panda_lightning.fitting.contract import takes_positions_grams
from panda_lightning.functional.validation import check_int
from panda_lightning.generators.frozen import FrozenGenerator
from panda_lightning.generators.latents import VALIDATION_STREAM, GaussianLatents, latents_for


class GeneratorActivations(L.LightningDataModule):
    """Latents -> frozen generator -> activations ``Z: (N, C, H, W)`` at ``layer``: the stream
    and its pool, over the :class:`~panda_lightning.generators.frozen.FrozenGenerator` it holds
    as :attr:`generator` (what the editor, the commands and the callbacks run).

    Only latents travel through the DataLoader; the generator runs on the training device in
    :meth:`on_after_batch_transfer`, stopped at ``layer`` (the layers after it never run).
    The generator costs several steps of Algorithm 1, so by default the activations of recent
    batches are kept in a pool on the device (:mod:`~panda_lightning.datamodules.pool`): each
    step draws its batch from the pool, and a fresh batch replaces the oldest every
    ``fresh_every`` steps. For a model that needs only each batch's positions' Gram matrix
    (PandA with ``R_C = C``) the pool keeps those instead, formed once per batch
    (:meth:`pools_grams`; the model says so at set-up, :mod:`~panda_lightning.fitting.contract`).
    The held-out samples are never pooled. Memory is the pool's
    ``pool_bytes`` and the validation samples' activations, whatever the number of steps.

    Args:
        generator: any ``nn.Module`` mapping a batch of latents to images. It is frozen
            (``eval()``, no gradients) and moved to the training device.
        layer: dotted path of the sub-module whose output to factorise (``"main.8"``), with a
            selector if it returns a tuple or dict (``"synthesis.b16[0]"``, ``"block['x']"``);
            ``panda layers --config ...`` lists them with their output shapes.
        batch_size: samples per batch on each device.
        latents: how to sample one latent; ``None`` uses the generator's own
            ``sample_latents`` (every adapter in ``panda_lightning.generators`` has one).
        seed: seed of the sample stream; the same seed streams the same samples.
        num_workers: DataLoader workers sampling latents (cheap: 0 is usually best).
        val_samples: held-out samples, never trained on, whose relative error the validation
            loop measures (``trainer.val_check_interval`` sets how often) and the fit stops on.
        pool_bytes: memory of the pool of training activations, all processes together
            (each holds its part of every pooled batch). A pool that cannot hold two batches is
            not kept: then every step streams a fresh batch, as with ``pool_bytes=0``.
        fresh_every: steps between fresh batches: each sample serves about this many steps.
        keep_validation: keep the validation samples' activations (``val_samples`` x C x H x W
            numbers, all processes together) after the first validation, rather than running
            the generator for them at every validation.
        grams_per_step: with a pool of Gram matrices (:meth:`pools_grams`), the pooled batches
            that each step sums: a step on ``grams_per_step * batch_size`` samples per process,
            at the cost of one.
    """

    def __init__(
        self,
        generator: nn.Module,
        layer: str = "main.8",
        batch_size: int = 64,
        latents: GaussianLatents | None = None,
        seed: int = 0,
        num_workers: int = 0,
        val_samples: int = 512,
        pool_bytes: int = 256 * 2**20,
        fresh_every: int = 16,
        keep_validation: bool = True,
        grams_per_step: int = 4,
    ):
        super().__init__()
        check_int("batch_size", batch_size, low=1)
        check_int("num_workers", num_workers, low=0)
        check_int("val_samples", val_samples, low=1, why="to fit without validation, set trainer.limit_val_batches=0")
        check_int("pool_bytes", pool_bytes, low=0, why="0: no pool, every step streams a fresh batch")
        check_int("fresh_every", fresh_every, low=1)
        check_int("grams_per_step", grams_per_step, low=1)
        self.generator = FrozenGenerator(generator, layer, latents, seed)
        self.batch_size = batch_size
        self.seed = seed
        self.num_workers = num_workers
        self.val_samples = val_samples
        self.pool_bytes = pool_bytes
        self.fresh_every = fresh_every
        self.keep_validation = keep_validation
        self.grams_per_step = grams_per_step
        self.next_step = 0
        self.pool: ActivationPool | None = None
        self.model_takes_grams = False  # told at set-up
        self._validation_cache: dict[int, Tensor] = {}  # this process's validation batches by index

    @property
    def layer(self) -> str:
        return self.generator.layer

    @property
    def feature_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of the activations (the CLI gives it to the model)."""
        return self.generator.feature_shape

    def setup(self, stage: str) -> None:
        # A DataModule is no nn.Module: the Trainer never moves the generator, so we do.
        if self.trainer is not None:
            self.model_takes_grams = takes_positions_grams(self.trainer.lightning_module)
            device = self.trainer.strategy.root_device
            self.generator.to(device)
            if stage == "fit":  # said now, not after the initialisation and the first validation
                check_fits(self.memory_plan(), device, self.trainer.num_devices if device.type == "cpu" else 1)
        self._validation_cache.clear()  # (of another device or split of the samples, perhaps)

    def memory_plan(self) -> dict[str, tuple[int, str]]:
        """The bytes of activations that each process holds during a fit, by what holds them,
        with the setting that lowers each."""
        _, world_size = self._rank_and_world()
        _, height, width = self.feature_shape
        schedule, batch = self.pool_schedule(), self.batch_size * self.generator.sample_bytes
        if schedule == PoolSchedule(1, 1):
            pool = 0
        elif self.pools_grams():
            pool = schedule.num_batches * (height * width) ** 2 * 4
        else:
            pool = schedule.num_batches * batch
        validation = -(-self.val_samples // world_size) * self.generator.sample_bytes if self.keep_validation else 0
        return {
            "kept validation activations": (validation, f"data.val_samples={self.val_samples}, or data.keep_validation=false"),
            "the pool": (pool, f"data.pool_bytes={self.pool_bytes}"),
            "a batch": (batch, f"data.batch_size={self.batch_size}"),
        }

    # -- the stream ------------------------------------------------------------------------

    def _rank_and_world(self) -> tuple[int, int]:
        if self.trainer is None:
            return 0, 1
        return self.trainer.global_rank, self.trainer.world_size

    def pool_schedule(self) -> PoolSchedule:
        """The pool's schedule within ``pool_bytes``; ``PoolSchedule(1, 1)``: no pool. It depends
        on the global batch only, so that any number of processes fits the same factors."""
        _, world_size = self._rank_and_world()
        pool_batches = self.pool_bytes // (self.batch_size * world_size * self.generator.sample_bytes)
        return PoolSchedule(pool_batches, self.fresh_every) if pool_batches >= 2 else PoolSchedule(1, 1)

    def pools_grams(self) -> bool:
        """Whether the pool keeps each batch's positions' Gram matrix ``sum_i Z_i^T Z_i`` rather
        than its activations: when the model takes it (as it said at set-up: PandA with ``R_C =
        C``) and an ``S x S`` matrix is no larger than a global batch's activations (``S <= N *
        C``, ``N`` the global batch), so that each process's pool stays within ``pool_bytes``."""
        channels, height, width = self.feature_shape
        _, world_size = self._rank_and_world()
        return self.model_takes_grams and height * width <= self.batch_size * world_size * channels

    def train_dataloader(self) -> DataLoader:
        rank, world_size = self._rank_and_world()
        schedule = self.pool_schedule()
        self.pool = None if schedule == PoolSchedule(1, 1) else ActivationPool(
            schedule, self.seed, rank, world_size, self.batch_size,
            grams_per_step=self.grams_per_step if self.pools_grams() else None,
        )
        self._stream = LatentStream(
            self.generator.sampler, self.batch_size, self.seed, rank, world_size, start_step=self.next_step,
            joins_at=schedule.joins_at,
        )
        if self.trainer is not None and self.trainer.training:
            rank_zero_info(self._describe(schedule, world_size))
        return DataLoader(
            self._stream, batch_size=None, num_workers=self.num_workers, persistent_workers=self.num_workers > 0
        )

    def _describe(self, schedule: PoolSchedule, world_size: int) -> str:
        batch_mib = self.batch_size * world_size * self.generator.sample_bytes / 2**20
        if self.pool is None:
            pool = f"no activation pool (pool_bytes={self.pool_bytes} holds fewer than 2 batches of {batch_mib:.1f} MiB): a fresh batch every step"
        elif self.pool.grams:
            channels, height, width = self.feature_shape
            gram_mib = (height * width) ** 2 * 4 / 2**20
            pool = (
                f"a pool of {schedule.num_batches} batches kept as their positions' Gram matrices "
                f"({schedule.num_batches * gram_mib:.0f} MiB on each process; the fit needs only these with "
                f"appearance_rank = C), {self.grams_per_step} summed for each step; a fresh batch every "
                f"{schedule.fresh_every} steps"
            )
        else:
            pool = (
                f"an activation pool of {schedule.num_batches} batches ({schedule.num_batches * batch_mib:.0f} MiB); "
                f"a fresh batch every {schedule.fresh_every} steps"
            )
        validation = self.val_samples * self.generator.sample_bytes / 2**20
        kept = f"kept ({validation:.0f} MiB)" if self.keep_validation else "recomputed at each validation"
        return f"GeneratorActivations: {pool}; validation activations {kept}."

    def val_dataloader(self) -> DataLoader:
        """The same ``val_samples`` held-out samples at every validation, split over the devices."""
        rank, world_size = self._rank_and_world()
        mine = range(rank, self.val_samples, world_size)
        batches = [
            (index, latents_for(self.generator.sampler, self.seed, VALIDATION_STREAM, mine[start : start + self.batch_size]))
            for index, start in enumerate(range(0, len(mine), self.batch_size))
        ]
        return DataLoader(batches, batch_size=None)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Tensor:
        index, latents = batch
        index = int(index)
        if self.trainer is not None and not self.trainer.training:
            return self._validation_activations(index, latents)
        self.next_step = index + 1
        if self.pool is None:
            return self.generator.activations(latents)
        # After a resume the pool is empty: it rebuilds the batches it should hold from the stream.
        joining = self.pool.schedule.joins_at(index)
        return self.pool.batch(
            index, lambda batch: self.generator.activations(latents if batch == joining else self._stream.batch(batch))
        )

    def _validation_activations(self, index: int, latents: Tensor) -> Tensor:
        if not self.keep_validation:
            return self.generator.activations(latents)
        if index not in self._validation_cache:
            self._validation_cache[index] = self.generator.activations(latents)
        return self._validation_cache[index]

    def held_out_batches(self, num_samples: int) -> Iterator[Tensor]:
        """Activations of ``num_samples`` held-out samples in all, split over the devices, from a
        stream apart from the training stream: for the HOSVD initialisation and dataset statistics."""
        rank, world_size = self._rank_and_world()
        return self.generator.held_out_batches(num_samples, self.batch_size, rank, world_size)

    # -- exact resume ---------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        # The pool is a function of the step: a resumed fit rebuilds it, so it is not saved.
        return {"next_step": self.next_step}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        # (Checkpoints of versions without a pool name the step "next_batch".)
        self.next_step = int(state_dict.get("next_step", state_dict.get("next_batch", 0)))
