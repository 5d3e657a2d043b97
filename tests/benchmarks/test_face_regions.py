"""The face regions of the locality table (benchmarks/evidence/face_regions.py): hulls and masks
exactly, and MediaPipe on the face generator's samples where its environment exists."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
import torch

from benchmarks.evidence import face_regions
from conftest import ROOT

SCRIPT = ROOT / "benchmarks" / "evidence" / "face_regions.py"  # run as a script by the MediaPipe environment


def test_the_convex_hull_keeps_the_corners_only_counter_clockwise():
    corners = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], dtype=float)
    inside = np.random.default_rng(0).uniform(0.1, 0.9, size=(20, 2))
    hull = face_regions.convex_hull(np.concatenate([inside, corners, corners[:2]]))
    assert sorted(map(tuple, hull)) == sorted(map(tuple, corners))
    x, y = hull[:, 0], hull[:, 1]
    assert 0.5 * np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y) == pytest.approx(1.0)  # counter-clockwise


def test_a_polygon_mask_is_its_area_fraction_per_pixel():
    left_half = np.array([[0, 0], [0.5, 0], [0.5, 1], [0, 1]])
    mask = face_regions.polygon_mask([left_half], 8, 8, upscale=4)
    assert mask.shape == (8, 8)
    assert mask.min() >= 0 and mask.max() <= 1
    assert mask[:, :3].min() > 0.9 and mask[:, 5:].max() < 0.1
    triangle = np.array([[0, 0], [1, 0], [0, 1]])
    assert face_regions.polygon_mask([triangle], 16, 16, upscale=8).mean() == pytest.approx(0.5, abs=0.04)


def test_background_is_everything_outside_the_face_oval():
    rng = np.random.default_rng(1)
    landmarks = rng.uniform(0.2, 0.8, size=(10, 2))
    sets = {"eyes": [[0, 1, 2], [3, 4, 5]], "nose": [[6, 7, 8]], "mouth": [[7, 8, 9]], "background": [list(range(10))]}
    masks = face_regions.region_masks(landmarks, sets, 16, 16, upscale=4)
    assert masks.shape == (4, 16, 16)
    oval = face_regions.polygon_mask([face_regions.convex_hull(landmarks)], 16, 16, 4)
    np.testing.assert_allclose(masks[3], 1 - oval)
    assert 0 < masks[0].sum() < oval.sum()  # each eye's hull lies inside the face's


def test_points_inside_a_convex_hull_edges_included():
    square = face_regions.convex_hull(np.array([[0, 0], [2, 0], [2, 2], [0, 2]], dtype=float))
    points = np.array([[1, 1], [0, 1], [2.5, 1], [1, -0.1], [0, 0]])
    assert face_regions.inside_convex(points, square).tolist() == [True, True, False, False, True]


# A face as MediaPipe's models see it, (x, y) with y down: right eye, left eye, nose tip, mouth centre.
FACE = np.array([[0.35, 0.40], [0.65, 0.40], [0.50, 0.55], [0.50, 0.70]])
OVAL = face_regions.convex_hull(np.array([[0.5, 0.1], [0.85, 0.45], [0.5, 0.9], [0.15, 0.45]]))


@pytest.mark.parametrize(
    "mesh, detected, reason",
    [
        (FACE, FACE + 0.02, ""),
        (FACE[[0, 1, 3, 2]], FACE, "eyes, nose and mouth out of order"),  # mouth above the nose
        (FACE - [0, 0.25], FACE, "eyes or mouth outside the face oval"),  # the eyes on the forehead, above the oval
        (FACE + [[0, 0], [0, 0], [0.3, 0], [0, 0]], FACE, "the mesh and the detector disagree"),  # a turned nose tip: in order, outside the oval
        (FACE, None, "no face for the detector"),
        (FACE, FACE + [0, 0.16], "the mesh and the detector disagree"),  # 0.16 > AGREEMENT x the eye distance of 0.3
        (FACE, FACE + [0, 0.14], ""),
    ],
)
def test_a_face_is_kept_only_where_its_landmarks_are_plausible(mesh, detected, reason):
    assert face_regions.landmark_check(mesh, OVAL, detected) == reason


@pytest.mark.slow
def test_mediapipe_finds_the_regions_of_generated_faces_in_their_order(tmp_path, eval_python):
    from panda_lightning.generators import FaceDCGAN
    from panda_lightning.images import to_unit_range

    generator = FaceDCGAN().eval()
    with torch.no_grad():
        images = to_unit_range(generator(generator.sample_latents(16, torch.Generator().manual_seed(0))))
    np.save(tmp_path / "images.npy", (images.permute(0, 2, 3, 1) * 255).round().to(torch.uint8).numpy())
    subprocess.run(
        [str(eval_python), str(SCRIPT), "--images", str(tmp_path / "images.npy"), "--output", str(tmp_path / "regions.npz")],
        check=True, capture_output=True,
    )
    result = np.load(tmp_path / "regions.npz")
    masks, found, rejected = result["masks"], result["found"], result["rejected"]
    np.testing.assert_array_equal(found, rejected == "")
    assert tuple(result["regions"]) == face_regions.REGIONS
    assert masks.shape == (16, 4, 64, 64) and found.sum() >= 12
    assert not masks[~found].any()  # no face, no regions
    rows = np.arange(64)[:, None]
    heights = {  # each region's mean row over the faces found: eyes above nose above mouth
        region: np.mean([(masks[i, r] * rows).sum() / masks[i, r].sum() for i in np.flatnonzero(found)])
        for r, region in enumerate(face_regions.REGIONS[:3])
    }
    assert 16 < heights["eyes"] < heights["nose"] < heights["mouth"] < 60, heights
    shares = masks[found].mean(axis=(0, 2, 3))
    assert 0.005 < shares[:3].min() and shares[:3].max() < 0.15 and 0.2 < shares[3] < 0.9, shares
