"""A pretrained generator, frozen, read and edited at one layer: what the fit streams, and what the
editor, the commands, the callbacks and inversion run.

Its weights never change (``eval()``, no gradients for them), but a pass may keep its graph for
gradients with respect to what goes in, the latents or the layer's activations (``grad=True``):
what inverting a photo into the generator needs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from functools import cached_property

import torch
from torch import Tensor, nn

from panda_lightning.functional.validation import check_int
from panda_lightning.generators.latents import (
    HELD_OUT_STREAM,
    PREVIEW_STREAM,
    LatentSampler,
    latent_sampler,
    latents_for,
)
from panda_lightning.generators.layers import activations_at, resolve_layer, with_replaced_output

Edit = Callable[[Tensor], Tensor]


class FrozenGenerator:
    """``network`` frozen, read and edited at ``layer``.

    Args:
        network: any ``nn.Module`` mapping a batch of latents to images (in ``[-1, 1]``). It is put
            in ``eval()`` mode and its parameters stop requiring gradients.
        layer: dotted path of the sub-module whose output is read and edited (``"main.8"``), with a
            selector if it returns a tuple or dict (``"synthesis.b16[0]"``); a wrong name fails
            here, listing the valid ones.
        latents: how to sample latents, ``(num_samples, torch.Generator) -> latents``; ``None``
            uses the network's own ``sample_latents`` (every adapter in ``panda_lightning.generators`` has one).
        seed: seed of the held-out samples (:meth:`held_out_latents`).

    Attributes:
        feature_shape: ``(C, H, W)`` of the activations at ``layer``.
        sample_bytes: bytes of one sample's activations.
    """

    def __init__(self, network: nn.Module, layer: str, latents: LatentSampler | None = None, seed: int = 0):
        self.network = network.eval().requires_grad_(False)
        resolve_layer(network, layer)
        self.layer = layer
        self.sampler = latent_sampler(network, latents)
        self.seed = check_int("seed", seed, low=0)
        probe = self.activations(self.held_out_latents(range(1)))
        self.feature_shape: tuple[int, int, int] = tuple(probe.shape[1:])
        self.sample_bytes = probe[0].numel() * probe.element_size()

    def __repr__(self) -> str:
        return f"FrozenGenerator({type(self.network).__name__}, layer={self.layer!r}, feature_shape={self.feature_shape})"

    @cached_property
    def image_size(self) -> tuple[int, int]:
        """``(H_img, W_img)`` of the network's images (one held-out sample's, generated once)."""
        return tuple(self.generate(self.held_out_latents(range(1))).shape[-2:])

    @property
    def device(self) -> torch.device:
        return next(self.network.parameters(), torch.empty(0)).device

    def to(self, device: torch.device | str) -> FrozenGenerator:
        self.network.to(device)
        return self

    def _inputs(self, latents: Tensor) -> Tensor:
        """``latents`` on the network's device, in its floating type where they are floating."""
        weight = next(self.network.parameters(), None)
        if weight is not None and latents.is_floating_point():
            return latents.to(device=weight.device, dtype=weight.dtype)
        return latents.to(self.device)

    # -- latents ------------------------------------------------------------------------------

    def preview_latents(self, num_samples: int, seed: int) -> Tensor:
        """Fixed latents for pictures, from a stream of their own: ``panda edit --seed seed``'s samples."""
        return latents_for(self.sampler, seed, PREVIEW_STREAM, range(num_samples))

    def held_out_latents(self, indices: Sequence[int]) -> Tensor:
        """The latents of the held-out samples with these indices (never trained on)."""
        return latents_for(self.sampler, self.seed, HELD_OUT_STREAM, indices)

    def held_out_batches(self, num_samples: int, batch_size: int, rank: int = 0, world_size: int = 1) -> Iterator[Tensor]:
        """Activations of ``num_samples`` held-out samples in all, this process's share of
        ``world_size``, ``batch_size`` at a time: for the HOSVD initialisation and dataset statistics."""
        mine = range(rank, num_samples, world_size)
        for start in range(0, len(mine), batch_size):
            yield self.activations(self.held_out_latents(mine[start : start + batch_size]))

    # -- passes -------------------------------------------------------------------------------

    def activations(self, latents: Tensor, grad: bool = False) -> Tensor:
        """``Z: (N, C, H, W)`` at the layer for ``latents``; the rest of the network is skipped.
        ``grad``: keep the graph, for gradients with respect to ``latents``."""
        latents = self._inputs(latents)
        with torch.set_grad_enabled(grad):
            return activations_at(self.network, self.layer, lambda: self.network(latents))

    def generate(self, latents: Tensor, edit: Edit | None = None, grad: bool = False) -> Tensor:
        """Images ``(N, 3, H_img, W_img)`` from the whole network, as it outputs them; with ``edit``,
        the activations ``Z`` at the layer are replaced by ``edit(Z)`` on the way."""
        latents = self._inputs(latents)
        with torch.set_grad_enabled(grad):
            if edit is None:
                return self.network(latents)
            return with_replaced_output(self.network, self.layer, edit, lambda: self.network(latents))

    @property
    def runs_from_layer(self) -> bool:
        """Whether the network runs from the layer's output on (``forward_from(layer, Z)``, as the
        bundled DCGANs do), so that an edit need not rerun the layers before it."""
        return callable(getattr(self.network, "forward_from", None))

    def images_at(self, latents: Tensor, activations: Tensor, grad: bool = False) -> Tensor:
        """The images of ``latents`` with the layer's activations replaced by ``activations``
        (an inverted photo's, say, which no latents give): one pass from the layer on where the
        network :attr:`runs_from_layer`, otherwise the whole network with the layer's output
        replaced (the layers after it may take the latents too: a StyleGAN's styles). ``grad``:
        keep the graph, for gradients with respect to ``latents`` or ``activations``."""
        if not self.runs_from_layer:
            return self.generate(latents, lambda _: activations, grad)
        with torch.set_grad_enabled(grad):
            return self.network.forward_from(self.layer, activations)

    def images_from(self, latents: Tensor, activations: Tensor | None, edit: Edit | None = None) -> Tensor:
        """The images of ``latents`` whose activations at the layer, ``activations =
        activations(latents)``, are replaced by ``edit(activations)`` (or kept, without ``edit``):
        one pass from the layer on where the network :attr:`runs_from_layer` (``activations``
        needed), otherwise the whole network (``activations`` unused, may be ``None``)."""
        if not self.runs_from_layer:
            return self.generate(latents, edit)
        return self.images_at(latents, activations if edit is None else edit(activations))

    def generate_with_edits(
        self, latents: Tensor, edits: Sequence[Edit], then: Callable[[Tensor], Tensor] = lambda images: images,
    ) -> tuple[Tensor, list[Tensor]]:
        """The images of ``latents``, and one batch of images per edit of their activations,
        each batch passed through ``then`` as it comes (to shrink it, say, so that many edits
        of large images are never held at full size together).

        Where the network :attr:`runs_from_layer`, the layers before the layer run once for all
        and each edit costs one pass from the layer on; otherwise each edit reruns the whole
        network with the layer's output replaced.
        """
        activations = self.activations(latents) if self.runs_from_layer else None
        original = then(self.images_from(latents, activations))
        return original, [then(self.images_from(latents, activations, edit)) for edit in edits]
