"""The locality table's one ROIR and "unchanged" rule, on images whose answer is known."""

from __future__ import annotations

import pytest
import torch

from benchmarks.face_regions import REGIONS
from benchmarks.locality.protocol import ROIR_CAP, UNCHANGED, Candidate, Samples, evaluate, roir_and_unchanged

HEIGHT = WIDTH = 4


def left_half() -> torch.Tensor:
    mask = torch.zeros(HEIGHT, WIDTH)
    mask[:, : WIDTH // 2] = 1
    return mask


def edits(inside: float, outside: float) -> torch.Tensor:
    """An RGB image ``(3, H, W)`` changed by ``inside`` in the left half and ``outside`` in the right."""
    mask = left_half()
    return (inside * mask + outside * (1 - mask)).expand(3, HEIGHT, WIDTH)


def test_the_rule_on_edits_whose_answer_is_known():
    cases = [  # (change inside, change outside): ROIR term, RMS change inside, unchanged
        ((0.5, 0.0), 0.0, 0.5, False),  # only inside: perfectly local
        ((0.1, 0.2), 2.0, 0.1, False),  # equal areas: the ratio of the changes
        ((0.01, 0.5), ROIR_CAP, 0.01, False),  # a ratio of 50, capped
        ((0.0, 0.3), ROIR_CAP, 0.0, True),  # only outside: the region is unchanged, and scores the cap
        ((0.0, 0.0), ROIR_CAP, 0.0, True),  # nothing at all
        ((0.5 * UNCHANGED, 0.0), ROIR_CAP, 0.5 * UNCHANGED, True),  # below the threshold
        ((2 * UNCHANGED, 0.0), 0.0, 2 * UNCHANGED, False),  # above it
    ]
    original = torch.full((len(cases), 3, HEIGHT, WIDTH), 0.5, dtype=torch.float64)
    edited = original + torch.stack([edits(*change) for change, *_ in cases]).double()
    ratios, changes, unchanged = roir_and_unchanged(original, edited, left_half())
    expected = torch.tensor([ratio for _, ratio, _, _ in cases], dtype=torch.float64)
    torch.testing.assert_close(ratios, expected)
    torch.testing.assert_close(changes, torch.tensor([change for *_, change, _ in cases], dtype=torch.float64))
    assert unchanged.tolist() == [flag for *_, flag in cases]


def test_the_table_counts_every_sample_the_unchanged_at_the_cap():
    # Two samples with the left half as the eyes: one edited inside and out, one only outside.
    images = torch.full((2, 3, HEIGHT, WIDTH), 0.5)
    regions = torch.zeros(2, len(REGIONS), HEIGHT, WIDTH)
    regions[:, REGIONS.index("eyes")] = left_half()
    samples = Samples(torch.zeros(2, 1), images, regions)
    change = torch.stack([edits(0.1, 0.2), edits(0.0, 0.2)])
    candidate = Candidate("by hand", lambda chunk, alpha: chunk.images + alpha * change)
    scores = evaluate(candidate, samples, 1.0, ["eyes"])["eyes"]
    assert scores.unchanged == 1
    torch.testing.assert_close(scores.ratios, torch.tensor([2.0, ROIR_CAP]))
    torch.testing.assert_close(scores.changes, torch.tensor([0.1, 0.0]))
    assert scores.roir == pytest.approx((2.0 + ROIR_CAP) / 2)
