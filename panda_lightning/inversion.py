"""A photo inverted into a frozen generator at its fitted layer, so that PandA's parts and
appearances edit it as they edit generated samples.

Two stages, each reported (steps, seconds, PSNR and SSIM of the reconstruction):

1. **The latents.** Several starts drawn from the generator's own latents each take a few steps,
   and the best one goes on: gradient descent (Adam) on the reconstruction loss plus the latents'
   prior, a penalty on their mean square's distance from 1 (a Gaussian latent's), so that they stay
   latents the generator was trained on. A StyleGAN's are searched in ``W`` (one ``w`` for every
   layer) or ``W+`` (one per layer), from the mapped starts, as NVIDIA's ``projector.py`` searches
   (without its noise maps: those stay the network's own).
2. **The layer.** The activations ``Z`` at the fitted layer, from the latents found, are refined
   on the same loss, pulled towards where they started (a penalty on ``||Z - Z_0||^2 / ||Z_0||^2``)
   so that the parts and appearances still mean there what they mean on generated images. The
   layers before the fitted one no longer matter: an edit changes ``Z``, and the layers after it
   render it.

The loss compares images in ``[0, 1]``: the mean absolute error by default, or the mean square
error, alone or plus ``1 - MS-SSIM`` (:mod:`~panda_lightning.functional.similarity`);
``docs/inversion.md`` says why, as measured.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO

import torch
from torch import Tensor

from panda_lightning.files import write_atomically
from panda_lightning.functional.similarity import ms_ssim, psnr, ssim
from panda_lightning.functional.validation import check_choice, check_float, check_int
from panda_lightning.generators.frozen import Edit, FrozenGenerator
from panda_lightning.images import to_unit_range
from panda_lightning.loading import RefusedFile, load_tensors
from panda_lightning.photos import Box

LOSSES = ("l1", "mse", "mse+ms-ssim")
SPACES = ("latents", "w", "w+")
FORMAT = "panda-inversion"
VERSION = 1


@dataclass(frozen=True)
class InversionSettings:
    """How a photo is inverted.

    Args:
        starts: latents drawn from the generator's own, each given ``start_steps`` steps; the best goes on.
        start_steps: steps each start takes before the best is chosen.
        latent_steps: steps of the latent stage after that, for the best start.
        layer_steps: steps of the layer stage.
        latent_lr: Adam's step size on the latents.
        layer_lr: Adam's step size on the layer's activations, relative to their RMS.
        prior: weight of the latents' prior.
        pull: weight of the pull of the layer's activations towards the generator's own.
        loss: the reconstruction loss: ``"l1"`` (measured best on photos), ``"mse"`` or ``"mse+ms-ssim"``.
        space: where the latents are searched: ``"latents"`` (the generator's own), or a
            StyleGAN's ``"w"`` or ``"w+"``.
        seed: seed of the starts.
    """

    starts: int = 8
    start_steps: int = 25
    latent_steps: int = 350
    layer_steps: int = 1000
    latent_lr: float = 0.05
    layer_lr: float = 0.05
    prior: float = 0.01
    pull: float = 0.05
    loss: str = "l1"
    space: str = "latents"
    seed: int = 0

    def __post_init__(self) -> None:
        check_int("starts", self.starts, low=1)
        for name in ("start_steps", "latent_steps", "layer_steps"):
            check_int(name, getattr(self, name), low=0)
        for name in ("latent_lr", "layer_lr"):
            check_float(name, getattr(self, name), low=0, low_inclusive=False)
        for name in ("prior", "pull"):
            check_float(name, getattr(self, name), low=0)
        check_choice("loss", self.loss, LOSSES)
        check_choice("space", self.space, SPACES)
        check_int("seed", self.seed, low=0)


@dataclass
class Stage:
    """What a stage reached: its steps and seconds, and its reconstruction's PSNR (dB) and SSIM."""

    steps: int
    seconds: float
    psnr: float
    ssim: float

    def __str__(self) -> str:
        return f"{self.steps} steps, {self.seconds:.1f} s: PSNR {self.psnr:.2f} dB, SSIM {self.ssim:.3f}"


@dataclass
class Inversion:
    """A photo inverted at a generator's layer: the latents found, ``(1, ...)``, and the layer's
    refined activations ``Z: (1, C, H, W)``, with what they were found for (the layer, the box
    of the photo, the photo's size and digest) and the stages' reports."""

    latents: Tensor
    activations: Tensor
    layer: str
    box: Box
    photo_size: tuple[int, int]
    photo_digest: str
    stages: dict[str, Stage] = field(default_factory=dict)

    def images(self, generator: FrozenGenerator, edit: Edit | None = None) -> Tensor:
        """The generator's image of the box, ``(1, 3, s, s)`` in ``[0, 1]``; with ``edit``, of the
        edited activations (the layers after the fitted one render them)."""
        activations = self.activations.to(generator.device)
        with torch.no_grad():
            return to_unit_range(generator.images_at(self.latents, activations if edit is None else edit(activations)).float())

    def save(self, path: str | Path) -> Path:
        """Write it (atomically) as tensors and plain values, which :meth:`load` reads without running anything."""
        return write_atomically(path, self.save_to)

    def save_to(self, file: IO[bytes]) -> None:
        """Write it to an open file, as :meth:`save` does."""
        content = {
            "format": FORMAT, "version": VERSION, "layer": self.layer, "latents": self.latents.detach().cpu(),
            "activations": self.activations.detach().cpu(), "box": [self.box.x, self.box.y, self.box.size],
            "photo_size": list(self.photo_size), "photo_digest": self.photo_digest,
            "stages": {name: asdict(stage) for name, stage in self.stages.items()},
        }
        torch.save(content, file)

    @classmethod
    def load(cls, path: str | Path) -> Inversion:
        """What :meth:`save` wrote; a ``ValueError`` naming ``path`` for anything else."""
        try:
            content = load_tensors(path, "inversion")
        except RefusedFile:
            raise
        except Exception as error:  # torch.load fails in many ways on a file that is not one of its own
            raise ValueError(f"inversion={str(path)!r} cannot be read ({type(error).__name__}): it is not a whole file that panda invert wrote.") from error
        if not isinstance(content, dict) or content.get("format") != FORMAT:
            raise ValueError(f"inversion={str(path)!r} is not an inversion that panda invert wrote.")
        return cls(
            content["latents"], content["activations"], content["layer"], Box(*content["box"]),
            tuple(content["photo_size"]), content["photo_digest"],
            {name: Stage(**stage) for name, stage in content["stages"].items()},
        )

    def check_for(self, generator: FrozenGenerator, photo: Tensor, path: str = "inversion") -> Inversion:
        """This inversion, when it was made of ``photo`` at ``generator``'s layer; else a ``ValueError`` saying which differs."""
        if self.layer != generator.layer or tuple(self.activations.shape[1:]) != tuple(generator.feature_shape):
            raise ValueError(
                f"{path} holds activations {tuple(self.activations.shape[1:])} of layer {self.layer!r}, but the "
                f"generator's layer {generator.layer!r} gives {tuple(generator.feature_shape)}: invert the photo again."
            )
        if photo_digest(photo) != self.photo_digest:
            raise ValueError(f"{path} was made of another photo (or of this one changed since): invert it again.")
        return self


def photo_digest(photo: Tensor) -> str:
    """A digest of a photo's pixels, to tell an inversion's photo from another."""
    return hashlib.sha256((photo * 255).round().to(torch.uint8).numpy().tobytes()).hexdigest()[:16]


def reconstruction_loss(images: Tensor, target: Tensor, loss: str) -> Tensor:
    """Each image's loss against ``target``, ``(N,)``; both in ``[0, 1]``."""
    if loss == "l1":
        return (images - target).abs().flatten(1).mean(dim=1)
    error = (images - target).square().flatten(1).mean(dim=1)
    return error if loss == "mse" else error + 1 - ms_ssim(images, target.expand_as(images))


def _report(images: Tensor, target: Tensor, steps: int, seconds: float) -> Stage:
    with torch.no_grad():
        return Stage(steps, seconds, psnr(images, target).item(), ssim(images, target).item())


def _latent_space(generator: FrozenGenerator, settings: InversionSettings) -> tuple[Tensor, Callable[[Tensor], Tensor], Callable[[Tensor], Tensor]]:
    """The starts, the map from the searched variables to the generator's latents, and their prior."""
    sampled = torch.cat([
        generator.sampler(1, torch.Generator().manual_seed(settings.seed * 100_003 + start)) for start in range(settings.starts)
    ]).to(generator.device)
    network = generator.network
    if settings.space == "latents":
        return sampled, lambda variables: variables, lambda variables: (variables.square().flatten(1).mean(dim=1) - 1).square()
    if not callable(getattr(network, "mapping_ws", None)):
        raise ValueError(f"space={settings.space!r} is a StyleGAN's; {type(network).__name__} has none: use space='latents'.")
    with torch.no_grad():
        ws = network.mapping_ws(sampled)
    num_ws = ws.shape[1]
    if settings.space == "w":
        return ws[:, :1], lambda variables: variables.expand(-1, num_ws, -1), lambda variables: variables.new_zeros(len(variables))
    return ws, lambda variables: variables, lambda variables: variables.new_zeros(len(variables))


def _adam(start: Tensor, loss_of: Callable[[Tensor], Tensor], lr: float, steps: int, after_step: Callable[[int], None]) -> Tensor:
    """``steps`` steps of Adam on ``loss_of(x).sum()`` from ``x = start``; ``after_step(step)`` after each (1, 2, ...)."""
    variable = start.detach().clone().requires_grad_()
    optimiser = torch.optim.Adam([variable], lr=lr)
    for step in range(steps):
        optimiser.zero_grad()
        loss_of(variable).sum().backward()
        optimiser.step()
        after_step(step + 1)
    return variable.detach()


def invert(
    generator: FrozenGenerator, target: Tensor, settings: InversionSettings = InversionSettings(),
    box: Box | None = None, photo: Tensor | None = None, progress: Callable[[str, int, int], None] | None = None,
) -> Inversion:
    """Invert ``target``, the box of a photo as the generator draws it (``(3, s, s)`` in ``[0, 1]``).

    Args:
        generator: the frozen generator, at the fitted layer.
        target: ``(3, s, s)`` in ``[0, 1]``, ``s`` the generator's image size (:func:`panda_lightning.photos.crop`).
        settings: see :class:`InversionSettings`.
        box, photo: what ``target`` is of, recorded in the result (the whole image, when not given).
        progress: called as ``progress(stage, step, steps)`` after each step (a page shows it; it may
            raise to cancel).
    """
    target = target.to(generator.device).float()[None]
    if tuple(target.shape[-2:]) != generator.image_size:
        raise ValueError(f"target has shape {tuple(target.shape[1:])}, but the generator draws {generator.image_size} pixels.")
    starts, to_latents, prior = _latent_space(generator, settings)
    told = progress or (lambda stage, step, steps: None)

    def loss_of(variables: Tensor) -> Tensor:
        images = to_unit_range(generator.generate(to_latents(variables), grad=True).float())
        return reconstruction_loss(images, target, settings.loss) + settings.prior * prior(variables)

    started = time.perf_counter()
    total = settings.start_steps + settings.latent_steps
    variables = _adam(starts, loss_of, settings.latent_lr, settings.start_steps, lambda step: told("latents", step, total))
    with torch.no_grad():
        best = int(loss_of(variables).argmin())
    variables = _adam(variables[best : best + 1], loss_of, settings.latent_lr, settings.latent_steps,
                      lambda step: told("latents", settings.start_steps + step, total))
    latents = to_latents(variables).detach()
    with torch.no_grad():
        start_activations = generator.activations(latents)
        reached = to_unit_range(generator.images_at(latents, start_activations).float())
    stages = {"latents": _report(reached, target, total, time.perf_counter() - started)}

    started = time.perf_counter()
    scale = start_activations.square().mean().sqrt().clamp_min(1e-12)
    energy = start_activations.square().sum()

    def layer_loss_of(activations: Tensor) -> Tensor:
        images = to_unit_range(generator.images_at(latents, activations, grad=True).float())
        pull = (activations - start_activations).square().sum() / energy
        return reconstruction_loss(images, target, settings.loss).sum() + settings.pull * pull

    activations = _adam(start_activations, layer_loss_of, settings.layer_lr * scale.item(), settings.layer_steps,
                        lambda step: told("layer", step, settings.layer_steps))
    with torch.no_grad():
        reached = to_unit_range(generator.images_at(latents, activations).float())
    stages["layer"] = _report(reached, target, settings.layer_steps, time.perf_counter() - started)

    size = target.shape[-1]
    photo_size = tuple(photo.shape[-2:]) if photo is not None else (size, size)
    return Inversion(
        latents.cpu(), activations.cpu(), generator.layer, box or Box(0, 0, size), photo_size,
        photo_digest(photo if photo is not None else target[0].cpu()), stages,
    )
