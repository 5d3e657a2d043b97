"""The locality table's protocol, the same for every method; docs/locality.md states it in full.

1. Train each method on the frozen generator, timed (:mod:`benchmarks.evidence.locality.methods`).
2. Draw a selection set and a disjoint test set of samples from streams no method trained
   on; find their eyes, nose, mouth and background with MediaPipe's face mesh
   (``benchmarks/evidence/face_regions.py``, in ``.venv-eval``); drop, for every method alike, the
   samples with no face found or with implausible landmarks, and count them.
3. Candidates: each method lists, for a region, its edits in its own order of priority, set
   without looking at any edit's ROIR (:mod:`benchmarks.evidence.locality.methods`); every method gets
   the first ``Setting.budget`` of its list, the same number for all.
4. For each method and region: rank those candidates by ``Setting.select_by`` of ROIR on the
   first ``--screen`` selection samples at the method's initial strength (among those that
   change the region of half the samples at least, by a tenth of the target or more); set each
   of the best ``--finalists`` to the strength that changes the region by ``Setting.target`` on
   the selection set (mean over samples of the root-mean-square change inside, images in
   ``[0, 1]``; :func:`benchmarks.evidence.locality.comparison.matched_strength`, at most 10x the initial
   strength; one that cannot reach it gives way to the next, up to 4x the finalists tried);
   keep the one with the lowest ``select_by`` there.
5. Report that edit's ROIR on the test set, at that strength (:mod:`benchmarks.evidence.locality.report`).

Every test sample counts: a sample's ROIR term (Eq. 13) is capped at ``ROIR_CAP``, and a sample
whose region the edit did not change (an RMS change inside below ``UNCHANGED``, where the ratio is
0/0 or infinite) scores the cap (:func:`roir_and_unchanged`).
"""

from __future__ import annotations

import subprocess
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from benchmarks.evidence.face_regions import REGIONS
from benchmarks.evidence.locality.comparison import matched_strength
from panda_lightning.generators.latents import latents_for
from panda_lightning.generators import FaceDCGAN
from panda_lightning.images import to_unit_range
from panda_lightning.metrics import region_change, roir_ratios

SEED = 2024
SELECTION_STREAM, TEST_STREAM, TRAINING_STREAM = 21, 22, 23  # apart from the fits' own streams
UNCHANGED = 1e-4  # RMS change inside the region, images in [0, 1], below which an edit left it unchanged
# A sample's ROIR term at most, and that of a sample whose region is unchanged: above the
# sqrt(99) ~ 9.95 of a change spread evenly over an image of which the region is 1%.
ROIR_CAP = 10.0
CHUNK = 256
# Every method's first strength: a step of 3 along a unit latent direction, or 3 typical
# activations at a layer; matched strengths stay within 10x of it.
INITIAL_STRENGTH, MAX_STRENGTH = 3.0, 30.0
STATISTICS = ("median", "capped mean")  # what an edit is chosen by
# Run as a script in .venv-eval, where MediaPipe has the numpy<2 it pins; here only its REGIONS are imported.
FACE_REGIONS_SCRIPT = Path(__file__).resolve().parents[1] / "face_regions.py"


# -- the rule --------------------------------------------------------------------------------


def roir_and_unchanged(original: Tensor, edited: Tensor, mask: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Each sample's ROIR term (Eq. 13) capped at ``ROIR_CAP``, its RMS change inside the region,
    and whether the edit left the region unchanged (an RMS change inside below ``UNCHANGED``,
    where the ratio is 0/0 or infinite: such a sample scores the cap): three ``(N,)`` tensors.
    Images ``(N, C, H, W)`` in ``[0, 1]``; ``mask`` as :func:`panda_lightning.metrics.roir_ratios`
    takes it."""
    ratios, changes, unchanged = plain_roir_and_unchanged(original, edited, mask)
    return capped(ratios, unchanged), changes, unchanged


def plain_roir_and_unchanged(original: Tensor, edited: Tensor, mask: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """As :func:`roir_and_unchanged`, with each ROIR term as Eq. 13 has it, uncapped."""
    changes = region_change(original, edited, mask)
    return roir_ratios(original, edited, mask), changes, changes < UNCHANGED


def capped(ratios: Tensor, unchanged: Tensor) -> Tensor:
    """ROIR terms capped at ``ROIR_CAP``, the unchanged samples' at the cap."""
    return torch.where(unchanged, torch.full_like(ratios, ROIR_CAP), ratios.clamp(max=ROIR_CAP))


def grown(regions: Tensor, pixels: int) -> Tensor:
    """``regions: (N, R, H, W)`` in ``[0, 1]``, each grown by ``pixels`` on every side (a
    ``2 pixels + 1`` square max filter); ``pixels = 0`` leaves them as they are."""
    if pixels == 0:
        return regions
    return F.max_pool2d(regions, 2 * pixels + 1, stride=1, padding=pixels)


# -- samples ---------------------------------------------------------------------------------


@dataclass
class Samples:
    """A set of samples with what the methods need of them, each computed once. ``grow``: the
    pixels by which its regions were grown from MediaPipe's (the region definition)."""

    latents: Tensor
    images: Tensor  # (N, 3, H, W) in [0, 1]
    regions: Tensor  # (N, len(REGIONS), H, W) in [0, 1]
    grow: int = 0
    cache: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.latents)

    def cached(self, key, compute: Callable[[], Tensor]) -> Tensor:
        if key not in self.cache:
            self.cache[key] = compute()
        return self.cache[key]

    def take(self, indices: Tensor | slice) -> Samples:
        return Samples(self.latents[indices], self.images[indices], self.regions[indices], self.grow)

    def subset(self, start: int, stop: int) -> Samples:
        return self.take(slice(start, stop))

    def with_regions_grown(self, pixels: int) -> Samples:
        """The same samples with the regions grown by ``pixels``; what does not depend on the
        regions (the activations, its chunks') is shared, not computed again."""
        shared = {key: value for key, value in self.cache.items() if key[0] == "activations"}
        grown_set = Samples(self.latents, self.images, grown(self.regions, pixels), self.grow + pixels, shared)
        if len(self) > CHUNK:
            grown_set.cache["chunks"] = [chunk.with_regions_grown(pixels) for chunk in self.chunks()]
        return grown_set

    def chunks(self) -> list[Samples]:
        """The set in chunks of ``CHUNK`` samples: the same chunks each time, so that what is
        computed on a chunk (activations, masks, scores) is computed once."""
        if len(self) <= CHUNK:
            return [self]
        return self.cached("chunks", lambda: [self.subset(i, i + CHUNK) for i in range(0, len(self), CHUNK)])


def resplit(selection: Samples, testing: Samples, split: int) -> tuple[Samples, Samples]:
    """Split ``split`` of the pooled samples into a selection and a test set of the same sizes:
    split 0 is the sets as drawn, each further one a random partition (seeded by ``split``)."""
    if split == 0:
        return selection, testing
    pooled = Samples(
        torch.cat([selection.latents, testing.latents]),
        torch.cat([selection.images, testing.images]),
        torch.cat([selection.regions, testing.regions]),
        selection.grow,
    )
    order = torch.randperm(len(pooled), generator=torch.Generator().manual_seed(SEED + split))
    return pooled.take(order[: len(selection)]), pooled.take(order[len(selection) :])


def find_face_regions(images: Tensor, eval_python: str) -> tuple[Tensor, Tensor, Counter]:
    """MediaPipe's face regions of ``images`` ``(N, 3, H, W)`` in ``[0, 1]``, run in the eval
    environment: ``masks (N, 4, H, W)``, ``found (N,)`` (a face with plausible landmarks) and
    how many faces were dropped for each reason."""
    if not Path(eval_python).exists():
        raise SystemExit(
            f"--eval_python={eval_python} does not exist. The face regions need MediaPipe in an environment "
            "of its own: run `make eval-env` (or `make locality-table`, which does it first)."
        )
    with tempfile.TemporaryDirectory() as directory:
        pixels = (images.permute(0, 2, 3, 1) * 255).round().to(torch.uint8).numpy()
        np.save(Path(directory) / "images.npy", pixels)
        output = Path(directory) / "regions.npz"
        run = subprocess.run(
            [eval_python, str(FACE_REGIONS_SCRIPT), "--images", str(Path(directory) / "images.npy"),
             "--output", str(output)],
            capture_output=True, text=True, check=False,
        )
        if run.returncode != 0:
            raise RuntimeError(
                f"{FACE_REGIONS_SCRIPT.name} failed (exit status {run.returncode}):\n{run.stderr[-3000:]}"
            )
        found = np.load(output)
        names = tuple(str(name) for name in found["regions"])
        if names != REGIONS:
            raise RuntimeError(f"face_regions.py wrote regions {names}; this benchmark expects {REGIONS}.")
        dropped = Counter(str(reason) for reason in found["rejected"] if reason)
        return torch.from_numpy(found["masks"]), torch.from_numpy(found["found"]), dropped


def draw_samples(generator: FaceDCGAN, count: int, stream: int, eval_python: str) -> tuple[Samples, Counter]:
    """Those of ``count`` samples of ``stream`` with a plausible face, and how many were dropped
    for each reason."""
    latents = latents_for(generator.sample_latents, SEED, stream, range(count))
    with torch.no_grad():
        images = torch.cat([to_unit_range(generator(chunk)) for chunk in latents.split(CHUNK)])
    masks, found, dropped = find_face_regions(images, eval_python)
    return Samples(latents[found], images[found], masks[found]), dropped


# -- candidate edits -------------------------------------------------------------------------


@dataclass(eq=False)
class Candidate:
    label: str
    edit: Callable[[Samples, float], Tensor]  # (samples, strength) -> edited images in [0, 1]


@dataclass
class Method:
    """A trained method: ``candidates(region, selection)`` lists its edits for the region in its
    own order of priority, which may look at the selection samples (their activations, their
    regions) but not at any edit's outcome. ``varied``: the method also runs in the splits and
    variants of the protocol."""

    name: str
    seconds: float  # training time
    candidates: Callable[[str, Samples], list[Candidate]]
    varied: bool = True


@dataclass(frozen=True)
class Setting:
    """The protocol's choices: the candidates each method gets per region, the change in the
    region that every edit is set to, the statistic an edit is chosen by, and the pixels by which
    MediaPipe's regions are grown."""

    budget: int = 20
    target: float = 0.1
    select_by: str = "median"
    grow: int = 0

    def __post_init__(self):
        if self.budget < 2 or self.budget % 2:
            raise ValueError(f"budget={self.budget!r} must be an even number, 2 or more: each edit is tried both ways.")
        if not self.target > 0:
            raise ValueError(f"target={self.target!r} must be a positive change.")
        if self.select_by not in STATISTICS:
            raise ValueError(f"select_by={self.select_by!r} is not one of {STATISTICS}.")
        if self.grow < 0:
            raise ValueError(f"grow={self.grow!r} must be 0 or more pixels.")

    def differences(self, other: Setting) -> str:
        """What this setting changes from ``other``, in words."""
        words = {"budget": "budget", "target": "target", "select_by": "select by", "grow": "regions grown by"}
        changed = [f"{words[name]} {getattr(self, name)}" for name in words if getattr(self, name) != getattr(other, name)]
        return ", ".join(changed) or "as set"


def variant(setting: Setting, change: str) -> Setting:
    """``setting`` with one choice changed, ``NAME=VALUE`` (``budget=8``, ``target=0.2``,
    ``select_by=capped mean``, ``grow=2``)."""
    name, _, value = change.partition("=")
    kinds = {"budget": int, "target": float, "select_by": str, "grow": int}
    if name not in kinds or not value:
        raise ValueError(f"{change!r} is not NAME=VALUE with NAME one of {list(kinds)}.")
    try:
        return replace(setting, **{name: kinds[name](value)})
    except ValueError as error:
        raise ValueError(f"{change!r}: {error}") from None


# -- choosing and scoring --------------------------------------------------------------------


@dataclass
class Scores:
    """An edit's ROIR terms and region changes over a set of samples, for one region."""

    plain: Tensor  # (N,) every sample's ROIR term as Eq. 13 has it (0/0 or infinite where unchanged)
    changes: Tensor  # (N,) every sample's RMS change inside the region
    unchanged_samples: Tensor  # (N,) bool: the edit left the sample's region unchanged

    @property
    def ratios(self) -> Tensor:
        """Every sample's capped ROIR term, the unchanged at the cap."""
        return capped(self.plain, self.unchanged_samples)

    @property
    def unchanged(self) -> int:
        return int(self.unchanged_samples.sum())

    @property
    def roir(self) -> float:
        """The capped mean."""
        return self.ratios.mean().item()

    def statistic(self, name: str) -> float:
        """``median`` or ``capped mean`` of the capped terms."""
        return self.ratios.median().item() if name == "median" else self.roir


def evaluate(candidate: Candidate, samples: Samples, alpha: float, regions: list[str]) -> dict[str, Scores]:
    """The candidate's edit at strength ``alpha`` on every sample, scored in each region; each
    chunk's scores are kept with the samples, so that the protocol's variants and the budgets
    that list the same candidate reuse them."""
    terms: dict[str, list[tuple[Tensor, Tensor, Tensor]]] = {region: [] for region in regions}
    for chunk in samples.chunks():
        keys = {region: ("scores", id(candidate), float(alpha), region) for region in regions}
        missing = [region for region in regions if keys[region] not in chunk.cache]
        if missing:
            edited = candidate.edit(chunk, alpha)
            for region in missing:
                mask = chunk.regions[:, REGIONS.index(region)]
                chunk.cache[keys[region]] = plain_roir_and_unchanged(chunk.images, edited, mask)
        for region in regions:
            terms[region].append(chunk.cache[keys[region]])
    return {region: Scores(*(torch.cat(parts) for parts in zip(*terms[region]))) for region in regions}


@dataclass
class Choice:
    region: str
    candidate: Candidate
    alpha: float
    selection_statistic: float
    screened: int  # of the candidates in the budget, those that passed the screen


def choose(
    method: Method, screening: Samples, selection: Samples, setting: Setting, finalists: int
) -> dict[str, Choice | None]:
    """For each region, the method's most local edit at the matched strength among the first
    ``setting.budget`` of its candidates (steps 3 and 4 of the protocol); ``None`` where none of
    them changes the region by ``setting.target``. ``screening`` is the start of ``selection``."""
    choices: dict[str, Choice | None] = {}
    for region in REGIONS:
        screened = []
        for candidate in method.candidates(region, selection)[: setting.budget]:
            scores = evaluate(candidate, screening, INITIAL_STRENGTH, [region])[region]
            # An edit must change the region of half the samples at least, and could reach the target within
            # MAX_STRENGTH if its change grew linearly: a cluster found in a few faces is no edit.
            if scores.unchanged <= 0.5 * len(scores.changes) and scores.changes.mean() >= setting.target / 10:
                screened.append((scores.statistic(setting.select_by), candidate))
        best, matched = None, 0
        # Each that cannot reach the target gives way to the next, up to 4 times the finalists.
        for _, candidate in sorted(screened, key=lambda pair: pair[0])[: 4 * finalists]:
            found = at_target(candidate, selection, region, setting.target)
            if found is None:
                continue
            alpha, scores = found
            statistic = scores.statistic(setting.select_by)
            if best is None or statistic < best.selection_statistic:
                best = Choice(region, candidate, alpha, statistic, len(screened))
            matched += 1
            if matched == finalists:
                break
        choices[region] = best  # None: no edit changes the region by the target
    return choices


def at_target(candidate: Candidate, samples: Samples, region: str, target: float) -> tuple[float, Scores] | None:
    """The strength at which the edit changes the region by ``target`` on average over the
    samples (within 5%), and its scores there; ``None`` if no strength up to ``MAX_STRENGTH``
    does: past it, a latent far outside its prior or an appearance far past the layer's range
    would no longer be the edit meant."""
    tried: dict[float, Scores] = {}

    def change_at(alpha: float) -> float:
        tried[alpha] = evaluate(candidate, samples, alpha, [region])[region]
        return tried[alpha].changes.mean().item()

    alpha, change = matched_strength(change_at, target, INITIAL_STRENGTH, max_strength=MAX_STRENGTH)
    return (alpha, tried[alpha]) if abs(change / target - 1) <= 0.05 else None


def scores_of(choice: Choice, samples: Samples) -> Scores:
    """The chosen edit, at its strength, scored in its region on ``samples`` (the test set)."""
    return evaluate(choice.candidate, samples, choice.alpha, [choice.region])[choice.region]
