"""What ``panda app`` does, without the web: samples, their parts, the appearances that matter at a
region, and edits of a fitted checkpoint, each answer an image.

A page sends, with each request, everything its answer depends on (an :class:`EditRequest`), so
the server keeps no page's state and two tabs never see each other's. What the :class:`Editor`
keeps is shared because it depends on the seed alone: the recent samples' latents, activations,
images and refined parts.
"""

from __future__ import annotations

import hashlib
import json
import shlex
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import Tensor

from panda_lightning.fitting.module import PandA
from panda_lightning.functional.editing import appearance_spread, mask_at_layer, part_mask, saliency_maps
from panda_lightning.functional.refinement import NUM_NEIGHBOURS
from panda_lightning.functional.validation import check_choice, check_float, check_index, check_int, shown
from panda_lightning.generators.frozen import FrozenGenerator
from panda_lightning.images import at_most, difference_image, mask_png, part_masks, segmentation_overlay, to_unit_range
from panda_lightning.inversion import Inversion, InversionSettings, invert
from panda_lightning.photos import Box, carry_back, crop
from panda_lightning.uses import Edit, concept_rewrite, local_edits, object_removal

PART_CHOICES = ("global", "full", "mutual_knn")  # the global parts, or each sample's refined with this affinity
ACTIONS = ("edit", "remove", "rewrite")
MAX_ALPHA = 100.0
MAX_SEED = 2**53 - 1  # the largest integer a page's numbers keep exactly

Method = TypeVar("Method", bound=Callable)


def _serialised(method: Method) -> Method:
    # One computation at a time: torch already uses every core for one, and the caches stay whole.
    @wraps(method)
    def locked(self: Editor, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            return method(self, *args, **kwargs)

    return locked  # type: ignore[return-value]


@dataclass(frozen=True)
class EditRequest:
    """One edit of one sample, as a page asks for it.

    Args:
        seed: the sample: the first of ``panda edit --seed seed``'s samples.
        action: ``"edit"`` (add ``appearance`` at the region, Sec. 3.3.1), ``"remove"`` (fill the
            region with the sample's background, Sec. 5.2) or ``"rewrite"`` (replace appearance
            ``source`` by ``appearance`` everywhere, Sec. 5.5).
        parts: ``"global"``, or each sample's parts refined with the ``"full"`` or ``"mutual_knn"`` affinity.
        part: the region, a part index; or
        mask: the region, hand-drawn: ``(H_img, W_img)`` in ``[0, 1]``.
        appearance: the appearance added, or written in place of ``source``.
        alpha: the strength, relative to the layer's typical activation (``panda edit``'s).
        source: the appearance that ``rewrite`` replaces.
        photo: an inverted photo's name (:meth:`Editor.add_photo`), edited in place of the sample of ``seed``.
    """

    seed: int
    action: str = "edit"
    parts: str = "global"
    part: int | None = None
    mask: Tensor | None = field(default=None, compare=False)
    appearance: int = 0
    alpha: float = 0.0
    source: int | None = None
    photo: str | None = None

    @property
    def subject(self) -> int | str:
        """What is edited: the seed of a sample, or the name of an inverted photo."""
        return self.seed if self.photo is None else self.photo

    @property
    def refine(self) -> str | None:
        return None if self.parts == "global" else self.parts

    @property
    def where(self) -> int | Tensor:
        return self.part if self.mask is None else self.mask


@dataclass
class Photo:
    """An inverted photo: its pixels ``(3, H, W)`` in ``[0, 1]`` on the CPU, its file's name, its
    inversion, and the generator's image of its box, ``(3, H_img, W_img)``."""

    pixels: Tensor
    name: str
    inversion: Inversion
    reconstruction: Tensor

    @property
    def inversion_file(self) -> str:
        return f"{Path(self.name).stem}.inversion.pt"


@dataclass
class Sample:
    """What is edited: latents ``(1, ...)``, activations ``Z: (1, C, H, W)``, the image the page
    shows, ``(3, H_img, W_img)`` in ``[0, 1]`` (on the generator's device: a generated sample, or a
    photo's box at the generator's size), its parts refined with each affinity asked for so far,
    and, for a photo, the photo."""

    latents: Tensor
    activations: Tensor
    image: Tensor
    refined: dict[str, Tensor] = field(default_factory=dict)
    photo: Photo | None = None

    def shown(self, generated: Tensor) -> Tensor:
        """The generator's images ``(N, 3, H_img, W_img)`` in ``[0, 1]`` as the page shows them: as
        they are for a sample; for a photo, its box plus the change from its reconstruction."""
        if self.photo is None:
            return generated
        return (self.image + generated - self.photo.reconstruction).clamp(0, 1)


class Editor:
    """Samples and edits of ``fitted`` on ``generator``, for ``panda app``.

    Args:
        fitted: the checkpoint's model, on the generator's device.
        generator: the configured generator at the fitted layer.
        command_prefix: how the exported commands start: ``panda --config ... --ckpt_path ...``
            options that name the run.
        gallery_size: appearances shown for a region.
        gallery_alpha: the strength of the gallery's edits.
        ranking_samples: held-out samples over which a region's appearances are ranked.
        num_neighbours: ``k`` of the mutual kNN graph of refined parts.
        cached_samples: samples kept.
        cached_photos: inverted photos kept.
        batch_size: held-out samples through the generator at a time.
    """

    def __init__(
        self,
        fitted: PandA,
        generator: FrozenGenerator,
        command_prefix: str = "",
        gallery_size: int = 8,
        gallery_alpha: float = 1.0,
        ranking_samples: int = 128,
        num_neighbours: int = NUM_NEIGHBOURS,
        cached_samples: int = 32,
        batch_size: int = 64,
        cached_photos: int = 8,
    ):
        self.fitted, self.generator, self.command_prefix = fitted, generator, command_prefix
        self.num_appearances = fitted.appearances.shape[1]
        self.gallery_size = check_int("gallery_size", gallery_size, low=1, high=self.num_appearances,
                                      why=f"at most the {self.num_appearances} appearances")
        self.gallery_alpha = check_float("gallery_alpha", gallery_alpha, low=-MAX_ALPHA, high=MAX_ALPHA)
        check_int("ranking_samples", ranking_samples, low=2)
        self.num_neighbours = num_neighbours
        self.cached_samples = check_int("cached_samples", cached_samples, low=1)
        self.cached_photos = check_int("cached_photos", cached_photos, low=1)
        _, self.height, self.width = fitted.hparams.feature_shape
        self.num_parts = fitted.parts.shape[1]
        appearances = fitted.appearances.detach()
        self._unit_appearances = appearances / appearances.norm(dim=0).clamp_min(torch.finfo(appearances.dtype).tiny)
        # Each appearance's coefficient at each position of held-out samples, (N, R_C, H, W):
        # a region's appearances are ranked by how much the samples differ along them there.
        self._held_out_saliency = torch.cat([
            saliency_maps(Z, self._unit_appearances).cpu() for Z in generator.held_out_batches(ranking_samples, batch_size)
        ])
        self._samples: OrderedDict[int, Sample] = OrderedDict()
        self._photos: OrderedDict[str, Sample] = OrderedDict()
        self._lock = threading.RLock()

    # -- samples and parts ---------------------------------------------------------------------

    @_serialised
    def sample(self, seed: int | str) -> Sample:
        """The sample of ``seed``: the first of ``panda edit --seed seed``'s samples; or, given a
        photo's name (:meth:`add_photo`), the photo."""
        if isinstance(seed, str):
            if seed not in self._photos:
                raise ValueError(f"photo={shown(seed)} is not a photo inverted here (the app keeps the last {self.cached_photos}): open it again.")
            return self._photos[seed]
        check_int("seed", seed, low=0, high=MAX_SEED, why="the largest integer a web page keeps exactly")
        if seed in self._samples:
            self._samples.move_to_end(seed)
            return self._samples[seed]
        latents = self.generator.preview_latents(1, seed)
        activations = self.generator.activations(latents)
        image = self.generator.images_from(latents, activations)
        sample = Sample(latents, activations, to_unit_range(image.float())[0])
        self._samples[seed] = sample
        while len(self._samples) > self.cached_samples:
            self._samples.popitem(last=False)
        return sample

    @_serialised
    def add_photo(
        self, pixels: Tensor, name: str, box: Box | None = None, settings: InversionSettings = InversionSettings(),
        progress: Callable[[str, int, int], None] | None = None,
    ) -> str:
        """Invert a photo (``(3, H, W)`` in ``[0, 1]``) in ``box`` (the middle square by default), and
        keep it to edit as a sample: its name for :class:`EditRequest`'s ``photo``."""
        _, height, width = pixels.shape
        box = (box or Box.centred(height, width)).check(height, width)
        target = crop(pixels, box, self.generator.image_size[0])
        inversion = invert(self.generator, target, settings, box, pixels, progress)
        key = f"{inversion.photo_digest}-{box.x}-{box.y}-{box.size}"
        reconstruction = inversion.images(self.generator)[0]
        photo = Photo(pixels, name, inversion, reconstruction)
        self._photos[key] = Sample(inversion.latents.to(self.generator.device), inversion.activations.to(self.generator.device),
                                   target.to(reconstruction), photo=photo)
        while len(self._photos) > self.cached_photos:
            self._photos.popitem(last=False)
        return key

    def picture_size(self, request: EditRequest) -> tuple[int, int]:
        """``(H, W)`` of what :meth:`edit` gives unshrunk: the generator's image, or the photo."""
        photo = self.sample(request.subject).photo
        return self.generator.image_size if photo is None else tuple(photo.pixels.shape[1:])

    @_serialised
    def parts(self, seed: int | str, parts: str = "global") -> Tensor:
        """The global parts ``(S, R_S)``, or the sample's refined with affinity ``parts``, ``(1, S, R_S)``."""
        check_choice("parts", parts, PART_CHOICES)
        if parts == "global":
            return self.fitted.parts.detach()
        sample = self.sample(seed)
        if parts not in sample.refined:
            sample.refined[parts] = self.fitted.refine(sample.activations, parts, num_neighbours=self.num_neighbours)
        return sample.refined[parts]

    @_serialised
    def overlay(self, seed: int | str, parts: str = "global") -> Tensor:
        """The sample in grey with each pixel in the colour of its strongest part, ``(3, H_img, W_img)``."""
        image = self.sample(seed).image.cpu()
        return segmentation_overlay(image[None], self.parts(seed, parts), self.height, self.width)[0]

    @_serialised
    def part_at(self, seed: int | str, parts: str, x: int, y: int) -> int:
        """The part that colours pixel ``(x, y)`` of :meth:`overlay`: the strongest there."""
        _, image_height, image_width = self.sample(seed).image.shape
        check_int("x", x, low=0, high=image_width - 1, why="a column of the image")
        check_int("y", y, low=0, high=image_height - 1, why="a row of the image")
        masks = part_masks(self.parts(seed, parts).float().cpu(), self.height, self.width, (image_height, image_width))
        return int(masks.reshape(-1, self.num_parts, image_height, image_width)[0, :, y, x].argmax())

    # -- a region's appearances ----------------------------------------------------------------

    @_serialised
    def ranked_appearances(self, request: EditRequest) -> list[tuple[int, float]]:
        """The appearances along which samples differ most at the request's region, with that spread:
        the standard deviation over held-out samples of the region's mean coefficient of the appearance
        (Eq. 18's score ``a_j^T Z_i p_k``, at a unit ``a_j`` and a mask summing to 1)."""
        spread = appearance_spread(self._held_out_saliency, self.region(request).cpu())
        scores, order = spread.topk(self.gallery_size)
        return list(zip(order.tolist(), scores.tolist()))

    @_serialised
    def gallery(self, request: EditRequest, largest: int = 128, batch_size: int = 4) -> list[tuple[int, float, Tensor]]:
        """``(appearance, spread, thumbnail)`` of the :meth:`ranked_appearances`: the sample with the
        appearance added at the region at ``gallery_alpha``, at most ``largest`` pixels a side;
        ``batch_size`` of them at a time through the generator."""
        ranked = self.ranked_appearances(request)
        sample = self.sample(request.subject)
        parts = None if request.refine is None else self.parts(request.subject, request.parts)
        thumbnails = []
        for start in range(0, len(ranked), batch_size):
            chosen = [appearance for appearance, _ in ranked[start : start + batch_size]]
            copies = len(chosen)

            def each_its_own(Z: Tensor, chosen: list[int] = chosen) -> Tensor:
                edits = [[(request.where, appearance, self.gallery_alpha)] for appearance in chosen]
                return torch.cat([self.fitted.local_edit(Z[i : i + 1], edit, parts) for i, edit in enumerate(edits)])

            latents = sample.latents.expand(copies, *sample.latents.shape[1:])
            activations = sample.activations.expand(copies, *sample.activations.shape[1:])
            images = sample.shown(to_unit_range(self.generator.images_at(latents, each_its_own(activations)).float()))
            thumbnails += list(at_most(images.cpu(), largest))
        return [(appearance, score, thumbnail) for (appearance, score), thumbnail in zip(ranked, thumbnails)]

    def region(self, request: EditRequest) -> Tensor:
        """The request's part or mask at the layer, ``(H, W)`` in ``[0, 1]``."""
        self.check(request)
        if request.mask is not None:
            return mask_at_layer(request.mask, self.height, self.width).to(self.fitted.parts)
        mask = part_mask(self.parts(request.subject, request.parts), request.part, self.height, self.width)
        return mask.reshape(self.height, self.width)

    # -- edits ---------------------------------------------------------------------------------

    def check_subject(self, request: EditRequest) -> EditRequest:
        """``request`` when what it edits is valid here: its seed, its parts and its photo, if any."""
        check_int("seed", request.seed, low=0, high=MAX_SEED, why="the largest integer a web page keeps exactly")
        check_choice("parts", request.parts, PART_CHOICES)
        if request.photo is not None:
            self.sample(request.photo)  # (one inverted here)
        return request

    def check(self, request: EditRequest) -> EditRequest:
        """``request`` when each of its values is valid here; else a ``ValueError`` naming the bad one."""
        self.check_subject(request)
        check_choice("action", request.action, ACTIONS)
        if request.action != "rewrite":
            if (request.part is None) == (request.mask is None):
                raise ValueError(f"action={request.action!r} needs a region: a part, or a mask drawn on the image.")
            if request.part is not None:
                check_index("part", request.part, self.num_parts, "parts")
        check_index("appearance", request.appearance, self.num_appearances, "appearances")
        check_float("alpha", request.alpha, low=-MAX_ALPHA, high=MAX_ALPHA)
        if request.action == "rewrite":
            if request.source is None:
                raise ValueError("action='rewrite' needs a source: the appearance to replace.")
            check_index("source", request.source, self.num_appearances, "appearances")
        return request

    @staticmethod
    def mask_file(mask: Tensor) -> str:
        """The name an exported command gives a hand-drawn mask, after its content: two masks
        saved side by side keep their own."""
        return f"panda-mask-{hashlib.sha256(mask_png(mask)).hexdigest()[:10]}.png"

    def output_file(self, request: EditRequest) -> str:
        """The name of the image an exported command writes, and the page downloads."""
        if request.photo is None:
            return f"{request.action}-seed{request.seed}.png"
        return f"{request.action}-{Path(self.sample(request.photo).photo.name).stem}.png"

    def options(self, request: EditRequest) -> dict[str, Any]:
        """The options of ``panda <action>`` that make this edit (of its first sample), with the
        edited image alone as its picture; a mask is named by :meth:`mask_file`."""
        self.check(request)
        where = self.mask_file(request.mask) if request.mask is not None else request.part
        refined = {} if request.refine is None or request.mask is not None else {"refine": request.refine, "num_neighbours": self.num_neighbours}
        if request.action == "edit":
            action = {"edits": [[where, request.appearance, request.alpha]], **refined}
        elif request.action == "remove":
            action = {"where": where, **refined}
        else:
            action = {"source": request.source, "target": request.appearance, "alpha": request.alpha}
        if request.photo is None:
            return {"seed": request.seed, "num_samples": 1, **action, "layout": "edited"}
        photo = self.sample(request.photo).photo
        return {"image": photo.name, "inversion": photo.inversion_file, **action, "layout": "edited"}

    def command(self, request: EditRequest) -> str:
        """The ``panda`` command that writes this edit's image, bit for bit, to :meth:`output_file`."""
        options = {**self.options(request), "output": self.output_file(request)}
        words = [f"--{name} {shlex.quote(json.dumps(value) if isinstance(value, list) else str(value))}" for name, value in options.items()]
        return " ".join(word for word in ["panda", request.action, self.command_prefix, *words] if word)

    def edit_function(self, request: EditRequest) -> Edit:
        """The edit of the activations that :meth:`options` ask ``panda <action>`` for, built by the same code."""
        options = self.options(request)
        if request.action == "rewrite":
            return concept_rewrite(self.fitted, options["source"], options["target"], options["alpha"])
        refine, neighbours = options.get("refine"), options.get("num_neighbours", self.num_neighbours)
        if request.action == "edit":
            return local_edits(self.fitted, [(request.where, request.appearance, request.alpha)], refine, neighbours)
        return object_removal(self.fitted, request.where, refine=refine, num_neighbours=neighbours)

    @_serialised
    def edit(self, request: EditRequest, largest: int | None = None) -> tuple[Tensor, Tensor]:
        """The edited image and where it changed, each ``(3, H_img, W_img)`` in ``[0, 1]`` (shrunk
        to at most ``largest`` pixels a side, on the device), on the CPU: for a photo, the photo at its
        own size with the edit carried back into its box (``panda edit --image``'s). The layers
        before the edited one do not run again where the generator allows it."""
        sample = self.sample(request.subject)
        edited = to_unit_range(self.generator.images_at(sample.latents, self.edit_function(request)(sample.activations)).float())
        original = sample.image[None]
        if sample.photo is not None:
            photo = sample.photo
            original = photo.pixels[None]
            edited = carry_back(photo.pixels, photo.inversion.box, photo.reconstruction.cpu(), edited[0].cpu())[None]
        difference = difference_image(original.to(edited), edited)
        if largest is not None:
            edited, difference = at_most(edited, largest), at_most(difference, largest)
        return edited[0].cpu(), difference[0].cpu()
