"""Stream activations of a frozen generator at one layer, batch after batch, without end."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import lightning as L
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from panda_lightning.datamodules.latent_stream import (
    HELD_OUT_STREAM,
    PREVIEW_STREAM,
    VALIDATION_STREAM,
    LatentSampler,
    LatentStream,
    latents_for,
)
from panda_lightning.functional.validation import check_int
from panda_lightning.generators import GaussianLatents
from panda_lightning.generators.layers import activations_at, feature_shape, resolve_layer, with_replaced_output


class GeneratorActivations(L.LightningDataModule):
    """Latents -> frozen generator -> activations ``Z: (N, C, H, W)`` at ``layer``.

    Only latents travel through the DataLoader; the generator runs on the training device in
    :meth:`on_after_batch_transfer`, stopped at ``layer`` (the layers after it never run).
    Memory is one batch, whatever the number of steps.

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
    ):
        super().__init__()
        check_int("batch_size", batch_size, low=1)
        check_int("num_workers", num_workers, low=0)
        check_int("seed", seed, low=0)
        check_int("val_samples", val_samples, low=1, why="to fit without validation, set trainer.limit_val_batches=0")
        self.generator = generator.eval().requires_grad_(False)
        self.layer = layer
        resolve_layer(generator, layer)  # a wrong name fails here, listing the valid ones
        self.sampler = self.latent_sampler(generator, latents)
        self.batch_size = batch_size
        self.seed = seed
        self.num_workers = num_workers
        self.val_samples = val_samples
        self.next_batch = 0
        self.feature_shape = feature_shape(generator, layer, self.held_out_latents(range(1)).to(self.device))

    @staticmethod
    def latent_sampler(generator: nn.Module, latents: GaussianLatents | None) -> LatentSampler:
        """``latents``, or else the generator's own ``sample_latents``."""
        if latents is not None:
            return latents
        if callable(getattr(generator, "sample_latents", None)):
            return generator.sample_latents
        raise ValueError(
            f"latents=None, and {type(generator).__name__} has no sample_latents method: pass "
            "latents=GaussianLatents(shape=[...]) with the shape of one latent."
        )

    # -- the frozen generator ------------------------------------------------------------

    @property
    def device(self) -> torch.device:
        return next(self.generator.parameters(), torch.empty(0)).device

    def setup(self, stage: str) -> None:
        # A DataModule is no nn.Module: the Trainer never moves the generator, so we do.
        if self.trainer is not None:
            self.generator.to(self.trainer.strategy.root_device)

    @torch.no_grad()
    def activations(self, latents: Tensor) -> Tensor:
        """``Z: (N, C, H, W)`` at ``layer`` for ``latents``; the rest of the generator is skipped."""
        latents = latents.to(self.device)
        return activations_at(self.generator, self.layer, lambda: self.generator(latents))

    @torch.no_grad()
    def generate(self, latents: Tensor, edit: Callable[[Tensor], Tensor] | None = None) -> Tensor:
        """Images ``(N, 3, H_img, W_img)`` from the whole generator, as it outputs them; with
        ``edit``, the activations ``Z`` at ``layer`` are replaced by ``edit(Z)`` on the way."""
        latents = latents.to(self.device)
        if edit is None:
            return self.generator(latents)
        return with_replaced_output(self.generator, self.layer, edit, lambda: self.generator(latents))

    @torch.no_grad()
    def generate_with_edits(
        self, latents: Tensor, edits: Sequence[Callable[[Tensor], Tensor]]
    ) -> tuple[Tensor, list[Tensor]]:
        """The images of ``latents``, and one batch of images per edit of their activations.

        With a generator that has ``forward_from(layer, Z)`` (the bundled adapters), the layers
        before ``layer`` run once for all, and each edit costs one pass from the layer on;
        otherwise each edit reruns the whole generator with the layer's output replaced.
        """
        forward_from = getattr(self.generator, "forward_from", None)
        if forward_from is None:
            return self.generate(latents), [self.generate(latents, edit) for edit in edits]
        activations = self.activations(latents)
        return forward_from(self.layer, activations), [forward_from(self.layer, edit(activations)) for edit in edits]

    # -- the stream ------------------------------------------------------------------------

    def _rank_and_world(self) -> tuple[int, int]:
        if self.trainer is None:
            return 0, 1
        return self.trainer.global_rank, self.trainer.world_size

    def train_dataloader(self) -> DataLoader:
        rank, world_size = self._rank_and_world()
        stream = LatentStream(
            self.sampler, self.batch_size, self.seed, rank, world_size, start_batch=self.next_batch
        )
        return DataLoader(
            stream, batch_size=None, num_workers=self.num_workers, persistent_workers=self.num_workers > 0
        )

    def val_dataloader(self) -> DataLoader:
        """The same ``val_samples`` held-out samples at every validation, split over the devices."""
        rank, world_size = self._rank_and_world()
        mine = range(rank, self.val_samples, world_size)
        batches = [
            (index, latents_for(self.sampler, self.seed, VALIDATION_STREAM, mine[start : start + self.batch_size]))
            for index, start in enumerate(range(0, len(mine), self.batch_size))
        ]
        return DataLoader(batches, batch_size=None)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Tensor:
        batch_index, latents = batch
        if self.trainer is None or self.trainer.training:
            self.next_batch = int(batch_index) + 1
        return self.activations(latents)

    def held_out_batches(self, num_samples: int) -> Iterator[Tensor]:
        """Activations of ``num_samples`` samples in all, split over the devices, from a stream
        apart from the training stream: for the HOSVD initialisation and dataset statistics."""
        rank, world_size = self._rank_and_world()
        mine = range(rank, num_samples, world_size)
        for start in range(0, len(mine), self.batch_size):
            yield self.activations(self.held_out_latents(mine[start : start + self.batch_size]))

    def held_out_latents(self, indices: Sequence[int]) -> Tensor:
        """The latents of the held-out samples with these indices."""
        return latents_for(self.sampler, self.seed, HELD_OUT_STREAM, indices)

    def preview_latents(self, num_samples: int, seed: int) -> Tensor:
        """Fixed latents for pictures, from a stream of their own."""
        return latents_for(self.sampler, seed, PREVIEW_STREAM, range(num_samples))

    # -- exact resume ---------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {"next_batch": self.next_batch}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.next_batch = int(state_dict["next_batch"])
