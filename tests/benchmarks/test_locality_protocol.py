"""The locality table's protocol on edits whose answer is known: its one ROIR and "unchanged" rule,
the budget, the selection statistic, the matched strength, the statistics reported, the region
definitions and the splits."""

from __future__ import annotations

import pytest
import torch

from benchmarks.evidence.face_regions import REGIONS
from benchmarks.evidence.locality.protocol import (
    ROIR_CAP,
    UNCHANGED,
    Candidate,
    Method,
    Samples,
    Setting,
    choose,
    evaluate,
    grown,
    resplit,
    roir_and_unchanged,
    variant,
)
from benchmarks.evidence.locality.report import median_interval, plain_mean

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


# -- the protocol's choices, on edits whose ROIR is set by hand --------------------------------


def faces(count: int) -> Samples:
    """``count`` grey samples whose eyes are the left half; no other region is present."""
    regions = torch.zeros(count, len(REGIONS), HEIGHT, WIDTH)
    regions[:, REGIONS.index("eyes")] = left_half()
    return Samples(torch.arange(count, dtype=torch.float32)[:, None], torch.full((count, 3, HEIGHT, WIDTH), 0.5), regions)


def linear_edit(per_sample_ratios: list[float], calls: list | None = None) -> Candidate:
    """An edit whose change grows with its strength and whose ROIR at sample ``i`` is
    ``per_sample_ratios[i % len]`` (the halves being of equal area)."""
    ratios = torch.tensor(per_sample_ratios)

    def edit(samples: Samples, alpha: float) -> torch.Tensor:
        if calls is not None:
            calls.append(alpha)
        index = samples.latents[:, 0].long() % len(ratios)
        inside, outside = left_half(), 1 - left_half()
        change = 0.01 * alpha * (inside + ratios[index].view(-1, 1, 1) * outside)
        return samples.images + change[:, None].expand(-1, 3, -1, -1)

    return Candidate(f"ratios {per_sample_ratios}", edit)


def one_method(candidates: list[Candidate]) -> Method:
    return Method("by hand", 0.0, lambda region, selection: candidates)


def test_every_method_chooses_among_the_same_number_of_its_own_first_candidates():
    selection = faces(16)
    candidates = [linear_edit([2.0]), linear_edit([1.5]), linear_edit([0.3])]  # the most local is third
    for budget, expected, ratio in ((2, 1, 1.5), (4, 2, 0.3)):
        choices = choose(one_method(candidates), selection.subset(0, 8), selection, Setting(budget=budget), finalists=4)
        assert choices["eyes"].candidate is candidates[expected]
        assert choices["eyes"].screened == min(budget, 3)
        assert all(choices[region] is None for region in REGIONS if region != "eyes")  # no such region here
        assert choices["eyes"].selection_statistic == pytest.approx(ratio, rel=1e-4)


def test_one_odd_face_cannot_swing_the_median_as_it_swings_the_capped_mean():
    selection = faces(16)
    odd = linear_edit([0.5] * 15 + [50.0])  # local on 15 faces, 50x on one: capped mean 0.5 + 9.5 / 16
    even = linear_edit([0.8])
    by_median = choose(one_method([odd, even]), selection, selection, Setting(budget=4), finalists=2)["eyes"]
    by_mean = choose(one_method([odd, even]), selection, selection, Setting(budget=4, select_by="capped mean"), finalists=2)["eyes"]
    assert by_median.candidate is odd and by_median.selection_statistic == pytest.approx(0.5, rel=1e-4)
    assert by_mean.candidate is even and by_mean.selection_statistic == pytest.approx(0.8, rel=1e-4)


def test_the_edit_is_set_to_the_target_change_and_scores_are_computed_once():
    selection, calls = faces(8), []
    candidate = linear_edit([1.0], calls)
    choice = choose(one_method([candidate]), selection, selection, Setting(budget=2, target=0.05), finalists=1)["eyes"]
    assert choice.alpha == pytest.approx(5.0, rel=0.03)  # the change inside is 0.01 alpha
    made = len(calls)
    again = choose(one_method([candidate]), selection, selection, Setting(budget=2, target=0.05), finalists=1)["eyes"]
    assert len(calls) == made and again.alpha == choice.alpha  # every score came from the samples' cache


def test_the_plain_mean_and_the_capped_terms_of_a_test_set():
    testing = faces(4)
    scores = evaluate(linear_edit([0.5, 30.0, 1.0, 2.0]), testing, 1.0, ["eyes"])["eyes"]
    torch.testing.assert_close(scores.plain, torch.tensor([0.5, 30.0, 1.0, 2.0]))
    torch.testing.assert_close(scores.ratios, torch.tensor([0.5, ROIR_CAP, 1.0, 2.0]))
    assert plain_mean(scores) == pytest.approx(33.5 / 4)
    low, high = median_interval(scores.ratios)
    assert 0.5 <= low <= scores.ratios.median() <= high <= ROIR_CAP
    assert median_interval(torch.full((50,), 0.7)) == pytest.approx((0.7, 0.7))


def test_regions_grow_by_whole_pixels():
    regions = torch.zeros(1, len(REGIONS), 7, 7)
    regions[0, 0, 3, 3] = 1
    assert grown(regions, 0) is regions
    torch.testing.assert_close(grown(regions, 1)[0, 0], torch.nn.functional.pad(torch.ones(3, 3), (2, 2, 2, 2)))
    assert grown(regions, 2)[0, 0].sum() == 25 and grown(regions, 2)[0, 1:].sum() == 0


def test_further_splits_partition_the_pooled_samples_anew():
    selection, testing = faces(6), faces(10)
    testing.latents += 100  # tell them apart
    assert resplit(selection, testing, 0) == (selection, testing)
    chosen, tested = resplit(selection, testing, 1)
    assert (len(chosen), len(tested)) == (6, 10)
    pooled = sorted(chosen.latents[:, 0].tolist() + tested.latents[:, 0].tolist())
    assert pooled == sorted(selection.latents[:, 0].tolist() + testing.latents[:, 0].tolist())
    assert sorted(chosen.latents[:, 0].tolist()) != sorted(selection.latents[:, 0].tolist())


@pytest.mark.parametrize(
    "change, message",
    [
        ("budget=7", r"'budget=7': budget=7 must be an even number, 2 or more"),
        ("select_by=mean", r"select_by='mean' is not one of \('median', 'capped mean'\)"),
        ("target=-1", r"target=-1.0 must be a positive change"),
        ("strength=2", r"'strength=2' is not NAME=VALUE with NAME one of \['budget', 'target', 'select_by', 'grow'\]"),
    ],
)
def test_a_variant_names_one_choice_and_a_valid_value(change, message):
    with pytest.raises(ValueError, match=message):
        variant(Setting(), change)
    assert variant(Setting(), "select_by=capped mean").differences(Setting()) == "select by capped mean"
    assert variant(Setting(), "grow=2").differences(Setting()) == "regions grown by 2"
