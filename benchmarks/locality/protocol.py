"""The locality table's protocol, the same for every method:

1. Train each method on the frozen generator, timed (the paper's Table 1 row;
   :mod:`benchmarks.locality.methods`).
2. Draw a selection set and a disjoint test set of samples from streams no method trained
   on; find their eyes, nose, mouth and background with MediaPipe's face mesh
   (``benchmarks/face_regions.py``, in ``.venv-eval``); drop the samples with no face found.
3. Candidates: a latent method's directions, each way; a layer method's (part, appearance)
   pairs, each way. ``edit(z) = G(z + alpha n)`` or ``G_after(Z + alpha m a^T)``.
4. For each method and region: rank every candidate by ROIR on the first ``--screen``
   selection samples at the method's initial strength (among those that change the region of
   half the samples at least, by a tenth of the target or more); set each of the best
   ``--finalists`` to the strength that changes the region by ``--target`` on the selection
   set (mean over samples of the root-mean-square change inside, images in ``[0, 1]``;
   :func:`benchmarks.locality.comparison.matched_strength`, at most 10x the initial strength;
   one that cannot reach it gives way to the next, up to 4x the finalists tried); keep the one
   with the lowest ROIR there.
5. Report that edit's ROIR (Eq. 13), mean +- std, on the test set, at that strength.

Every test sample counts (Eq. 13 averages over all N): a sample's ROIR term is capped at
``ROIR_CAP``, and a sample whose region the edit did not change (an RMS change inside below
``UNCHANGED``, where the ratio is 0/0 or infinite) scores the cap (:func:`roir_and_unchanged`).
The details table gives the median and counts the unchanged samples.
"""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from benchmarks.face_regions import REGIONS
from benchmarks.locality.comparison import matched_strength
from panda_lightning.datamodules.latent_stream import latents_for
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
# Run as a script in .venv-eval, where MediaPipe has the numpy<2 it pins; here only its REGIONS are imported.
FACE_REGIONS_SCRIPT = Path(__file__).resolve().parents[1] / "face_regions.py"


# -- the rule --------------------------------------------------------------------------------


def roir_and_unchanged(original: Tensor, edited: Tensor, mask: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Each sample's ROIR term (Eq. 13) capped at ``ROIR_CAP``, its RMS change inside the region,
    and whether the edit left the region unchanged (an RMS change inside below ``UNCHANGED``,
    where the ratio is 0/0 or infinite: such a sample scores the cap): three ``(N,)`` tensors.
    Images ``(N, C, H, W)`` in ``[0, 1]``; ``mask`` as :func:`panda_lightning.metrics.roir_ratios`
    takes it."""
    changes = region_change(original, edited, mask)
    unchanged = changes < UNCHANGED
    ratios = roir_ratios(original, edited, mask).clamp(max=ROIR_CAP)
    return torch.where(unchanged, torch.full_like(ratios, ROIR_CAP), ratios), changes, unchanged


# -- samples ---------------------------------------------------------------------------------


@dataclass
class Samples:
    """A set of samples with what the methods need of them, each computed once."""

    latents: Tensor
    images: Tensor  # (N, 3, H, W) in [0, 1]
    regions: Tensor  # (N, len(REGIONS), H, W) in [0, 1]
    cache: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.latents)

    def cached(self, key, compute: Callable[[], Tensor]) -> Tensor:
        if key not in self.cache:
            self.cache[key] = compute()
        return self.cache[key]

    def subset(self, start: int, stop: int) -> Samples:
        return Samples(self.latents[start:stop], self.images[start:stop], self.regions[start:stop])

    def chunks(self) -> list[Samples]:
        """The set in chunks of ``CHUNK`` samples: the same chunks each time, so that what is
        computed on a chunk (activations, masks) is computed once."""
        if len(self) <= CHUNK:
            return [self]
        return self.cached("chunks", lambda: [self.subset(i, i + CHUNK) for i in range(0, len(self), CHUNK)])


def find_face_regions(images: Tensor, eval_python: str) -> tuple[Tensor, Tensor]:
    """MediaPipe's face regions of ``images`` ``(N, 3, H, W)`` in ``[0, 1]``, run in the eval
    environment: ``masks (N, 4, H, W)``, ``found (N,)``."""
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
        return torch.from_numpy(found["masks"]), torch.from_numpy(found["found"])


def draw_samples(generator: FaceDCGAN, count: int, stream: int, eval_python: str) -> Samples:
    """Those of ``count`` samples of ``stream`` in which a face was found."""
    latents = latents_for(generator.sample_latents, SEED, stream, range(count))
    with torch.no_grad():
        images = torch.cat([to_unit_range(generator(chunk)) for chunk in latents.split(CHUNK)])
    masks, found = find_face_regions(images, eval_python)
    return Samples(latents[found], images[found], masks[found])


# -- candidate edits -------------------------------------------------------------------------


@dataclass
class Candidate:
    label: str
    edit: Callable[[Samples, float], Tensor]  # (samples, strength) -> edited images in [0, 1]
    region: str | None = None  # an edit made for one region only (at that region's mask)


@dataclass
class Method:
    name: str
    seconds: float  # training time
    candidates: list[Candidate]


# -- choosing and scoring --------------------------------------------------------------------


@dataclass
class Scores:
    """An edit's ROIR terms and region changes over a set of samples, for one region."""

    ratios: Tensor  # (N,) every sample's capped ROIR term
    changes: Tensor  # (N,) every sample's RMS change inside the region
    unchanged: int  # of them, the samples whose region the edit did not change (scored at the cap)

    @property
    def roir(self) -> float:
        return self.ratios.mean().item()


def evaluate(candidate: Candidate, samples: Samples, alpha: float, regions: list[str]) -> dict[str, Scores]:
    """The candidate's edit at strength ``alpha`` on every sample, scored in each region."""
    terms: dict[str, list[tuple[Tensor, Tensor, Tensor]]] = {region: [] for region in regions}
    for chunk in samples.chunks():
        edited = candidate.edit(chunk, alpha)
        for region in regions:
            terms[region].append(roir_and_unchanged(chunk.images, edited, chunk.regions[:, REGIONS.index(region)]))
    scores = {}
    for region in regions:
        ratio, change, unchanged = (torch.cat(parts) for parts in zip(*terms[region]))
        scores[region] = Scores(ratio, change, int(unchanged.sum()))
    return scores


@dataclass
class Choice:
    region: str
    candidate: Candidate
    alpha: float
    selection_roir: float
    screened: int


def choose(
    method: Method, screening: Samples, selection: Samples, target: float, finalists: int
) -> dict[str, Choice | None]:
    """For each region, the method's most local edit at the matched strength (step 4 of the
    protocol); ``None`` where none of its best edits changes the region by ``target``."""
    screened: dict[str, list[tuple[float, Candidate]]] = {region: [] for region in REGIONS}
    for candidate in method.candidates:
        regions = [candidate.region] if candidate.region else list(REGIONS)
        for region, scores in evaluate(candidate, screening, INITIAL_STRENGTH, regions).items():
            # An edit must change the region of half the samples at least, and could reach the target within
            # MAX_STRENGTH if its change grew linearly: a cluster found in a few faces is no edit.
            if scores.unchanged <= 0.5 * len(scores.changes) and scores.changes.mean() >= target / 10:
                screened[region].append((scores.roir, candidate))
    choices: dict[str, Choice | None] = {}
    for region in REGIONS:
        best, matched = None, 0
        # Each that cannot reach the target gives way to the next, up to 4 times the finalists.
        for _, candidate in sorted(screened[region], key=lambda pair: pair[0])[: 4 * finalists]:
            found = at_target(candidate, selection, region, target)
            if found is None:
                continue
            alpha, scores = found
            if best is None or scores.roir < best.selection_roir:
                best = Choice(region, candidate, alpha, scores.roir, len(screened[region]))
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
