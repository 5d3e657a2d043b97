"""Face regions (eyes, nose, mouth, background) from MediaPipe's face mesh, as soft masks.

    .venv-eval/bin/python benchmarks/evidence/face_regions.py --images faces.npy --output regions.npz [--upscale 4]

Runs in its own environment (``make eval-env``: mediapipe 0.10.21 pins numpy<2, the main one
has numpy 2), so it imports neither torch nor the project: numpy arrays in, numpy arrays out.

``--images``: uint8 ``(N, H, W, 3)`` RGB. Each image is upscaled ``--upscale`` times (bicubic;
the face mesh misses most 64 px faces as they are), its 468 landmarks found, and each region
drawn as the convex hull of its standard landmark set (each eye with its brow) at the upscaled size, then averaged
back down to ``(H, W)``, so edge pixels get the fraction of them inside. ``background`` is
everything outside the face oval (hair, neck and the backdrop).

A face is kept only if its landmarks pass :func:`landmark_check`: the mesh's eyes above its nose
tip above its mouth, its eyes and mouth inside its face oval, and MediaPipe's face detector, a second model,
placing its own eyes, nose tip and mouth centre within ``AGREEMENT`` of its eye distance of the
mesh's. On 64 px faces the mesh can sit on the wrong place (its eyes on the forehead) and still
report a face.

Writes ``--output`` (``.npz``): ``masks`` float32 ``(N, 4, H, W)`` in ``[0, 1]``, ``found`` bool
``(N,)`` (a face kept; masks are 0 elsewhere), ``rejected`` str ``(N,)`` (why a face was not
kept, ``""`` where it was) and ``regions``, the region names.
"""

from __future__ import annotations

import argparse
import os
import tempfile

import numpy as np
from PIL import Image, ImageDraw

REGIONS = ("eyes", "nose", "mouth", "background")
# How far the face detector's eyes, nose tip and mouth centre may lie from the mesh's, in units of
# the detector's eye distance. Two models agree within 0.14 on the median face and 0.37 at the 95th
# percentile of the face DCGAN's; beyond 0.5 one of them has misplaced the face.
AGREEMENT = 0.5
NO_FACE = "no face found"


def convex_hull(points: np.ndarray) -> np.ndarray:
    """The convex hull of ``points: (M, 2)``, counter-clockwise, by Andrew's monotone chain."""
    points = np.unique(np.asarray(points, dtype=np.float64), axis=0)
    if len(points) < 3:
        return points

    def half(ordered: np.ndarray) -> list[np.ndarray]:
        chain: list[np.ndarray] = []
        for point in ordered:
            while len(chain) >= 2 and np.cross(chain[-1] - chain[-2], point - chain[-2]) <= 0:
                chain.pop()
            chain.append(point)
        return chain

    lower, upper = half(points), half(points[::-1])
    return np.array(lower[:-1] + upper[:-1])


def polygon_mask(polygons: list[np.ndarray], height: int, width: int, upscale: int) -> np.ndarray:
    """The union of ``polygons`` (vertices ``(x, y)`` in ``[0, 1]``), drawn at ``upscale`` times
    ``(height, width)`` and averaged down: ``(height, width)`` in ``[0, 1]``."""
    canvas = Image.new("L", (width * upscale, height * upscale), 0)
    draw = ImageDraw.Draw(canvas)
    for polygon in polygons:
        vertices = [(x * width * upscale, y * height * upscale) for x, y in polygon]
        draw.polygon(vertices, fill=255)
    drawn = np.asarray(canvas, dtype=np.float32) / 255
    return drawn.reshape(height, upscale, width, upscale).mean(axis=(1, 3))


def inside_convex(points: np.ndarray, hull: np.ndarray) -> np.ndarray:
    """Whether each of ``points: (M, 2)`` lies in the counter-clockwise convex ``hull: (K, 2)``
    (on its edge counts): ``(M,)`` bool."""
    edges = np.roll(hull, -1, axis=0) - hull
    offsets = points[:, None, :] - hull[None, :, :]
    return (edges[None, :, 0] * offsets[..., 1] - edges[None, :, 1] * offsets[..., 0] >= 0).all(axis=1)


def landmark_check(mesh_points: np.ndarray, oval: np.ndarray, detector_points: np.ndarray | None) -> str:
    """Why a face's landmarks are implausible, ``""`` if they are not.

    ``mesh_points: (4, 2)``: the mesh's right eye, left eye, nose tip and mouth centre, ``(x, y)``
    with ``y`` down; ``oval``: the hull of its face oval; ``detector_points: (4, 2)``: the face
    detector's same four keypoints, ``None`` where it found no face.
    """
    right_eye, left_eye, nose, mouth = mesh_points
    if not max(right_eye[1], left_eye[1]) < nose[1] < mouth[1]:
        return "eyes, nose and mouth out of order"
    # The nose tip is left out: in a turned face it stands out of the oval's outline.
    if not inside_convex(mesh_points[[0, 1, 3]], oval).all():
        return "eyes or mouth outside the face oval"
    if detector_points is None:
        return "no face for the detector"
    eye_distance = np.linalg.norm(detector_points[0] - detector_points[1])
    if np.linalg.norm(mesh_points - detector_points, axis=1).max() > AGREEMENT * eye_distance:
        return "the mesh and the detector disagree"
    return ""


def landmark_sets() -> dict[str, list[list[int]]]:
    """For each region, the landmark index sets whose hulls make it up (MediaPipe's standard
    connection sets; background is the face oval, inverted)."""
    from mediapipe.python.solutions import face_mesh_connections as mesh

    def indices(connections) -> list[int]:
        return sorted({index for edge in connections for index in edge})

    return {
        # Each eye with its brow: the eye openings alone are 2 positions of a 16 x 16 layer.
        "eyes": [
            indices(mesh.FACEMESH_LEFT_EYE | mesh.FACEMESH_LEFT_EYEBROW),
            indices(mesh.FACEMESH_RIGHT_EYE | mesh.FACEMESH_RIGHT_EYEBROW),
        ],
        "nose": [indices(mesh.FACEMESH_NOSE)],
        "mouth": [indices(mesh.FACEMESH_LIPS)],
        "background": [indices(mesh.FACEMESH_FACE_OVAL)],
    }


def region_masks(landmarks: np.ndarray, sets: dict[str, list[list[int]]], height: int, width: int, upscale: int) -> np.ndarray:
    """``(4, height, width)`` masks from one face's landmarks ``(468, 2)`` (normalised ``x, y``)."""
    masks = []
    for region in REGIONS:
        mask = polygon_mask([convex_hull(landmarks[group]) for group in sets[region]], height, width, upscale)
        masks.append(1 - mask if region == "background" else mask)
    return np.stack(masks)


def key_point_sets() -> list[list[int]]:
    """The landmark sets of the mesh's right eye, left eye, nose tip and mouth centre, as the face
    detector orders its keypoints: each point is the mean of its set."""
    from mediapipe.python.solutions import face_mesh_connections as mesh

    def indices(connections) -> list[int]:
        return sorted({index for edge in connections for index in edge})

    nose_tip = [1]  # the mesh's landmark at the tip of the nose
    return [indices(mesh.FACEMESH_RIGHT_EYE), indices(mesh.FACEMESH_LEFT_EYE), nose_tip, indices(mesh.FACEMESH_LIPS)]


def find_regions(images: np.ndarray, upscale: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``masks (N, 4, H, W)``, ``found (N,)`` and ``rejected (N,)`` for uint8 images ``(N, H, W, 3)``."""
    import mediapipe as mp

    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(f"images are {images.dtype} {images.shape}; they must be uint8 RGB (N, H, W, 3).")
    count, height, width, _ = images.shape
    sets, points = landmark_sets(), key_point_sets()
    masks = np.zeros((count, len(REGIONS), height, width), dtype=np.float32)
    rejected = np.full(count, NO_FACE, dtype=object)
    with (
        mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1) as face_mesh,
        mp.solutions.face_detection.FaceDetection(model_selection=0) as face_detection,
    ):
        for i, image in enumerate(images):
            upscaled = np.asarray(Image.fromarray(image).resize((width * upscale, height * upscale), Image.BICUBIC))
            result = face_mesh.process(upscaled)
            if not result.multi_face_landmarks:
                continue
            landmarks = np.array([(p.x, p.y) for p in result.multi_face_landmarks[0].landmark])
            detections = face_detection.process(upscaled).detections
            detected = None if not detections else np.array(
                [(p.x, p.y) for p in detections[0].location_data.relative_keypoints[:4]]
            )
            mesh_points = np.stack([landmarks[group].mean(axis=0) for group in points])
            rejected[i] = landmark_check(mesh_points, convex_hull(landmarks[sets["background"][0]]), detected)
            if not rejected[i]:
                masks[i] = region_masks(landmarks, sets, height, width, upscale)
    found = rejected == ""
    return masks, found, rejected.astype(str)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", required=True, help="uint8 (N, H, W, 3) .npy")
    parser.add_argument("--output", required=True, help=".npz to write (atomically)")
    parser.add_argument("--upscale", type=int, default=4)
    args = parser.parse_args()
    if args.upscale < 1:
        parser.error(f"--upscale={args.upscale} must be a positive integer.")
    masks, found, rejected = find_regions(np.load(args.images), args.upscale)
    directory = os.path.dirname(os.path.abspath(args.output))
    with tempfile.NamedTemporaryFile(dir=directory, suffix=".npz", delete=False) as file:
        np.savez_compressed(file, masks=masks, found=found, rejected=rejected, regions=np.array(REGIONS))
    os.replace(file.name, args.output)
    reasons = ", ".join(f"{reason}: {int((rejected == reason).sum())}" for reason in sorted(set(rejected) - {""}))
    print(f"face regions: a face kept in {found.sum()} of {len(found)} images ({reasons or 'none dropped'}) -> {args.output}")


if __name__ == "__main__":
    main()
