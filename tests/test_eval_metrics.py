"""Evaluation formulas against hand-computed tables (benchmarks/README.md beside the checkout)."""

from __future__ import annotations

import pytest

from longwriter.evaluation.metrics import (
    QUALITY_DIMENSIONS,
    checklist_score,
    length_score,
    length_score_text,
    mean_length_score,
    policy_outcome,
    quality_score,
    win_rates,
    writingbench_score,
)
from longwriter.text import count_words


@pytest.mark.parametrize(
    "x,y,expected",
    [
        (1000, 1000, 100.0),
        (1000, 2000, 100 * (1 - 1 / 3)),  # 66.67
        (1000, 1300, 90.0),  # 1 - 0.3/3
        (1000, 4000, 0.0),  # 1 - 3/3
        (1000, 9000, 0.0),  # clipped at 0
        (1000, 500, 50.0),  # 1 - (2 - 1)/2
        (1000, 400, 25.0),  # 1 - (2.5 - 1)/2
        (1000, 300, 0.0),  # 1 - (3.33 - 1)/2 < 0 -> 0
        (1000, 0, 0.0),  # empty output: 0, not ZeroDivisionError
        (100, 80, 87.5),  # 1 - (1.25 - 1)/2: the lower edge of LongBench-Write's length_range
        (100, 120, 100 * (1 - 0.2 / 3)),  # 93.33: the upper edge
        (0, 0, 100.0),  # nothing requested, nothing written
        (0, 5, 0.0),
    ],
)
def test_length_score_table(x: int, y: int, expected: float) -> None:
    assert length_score(x, y) == pytest.approx(expected)


def test_length_score_shape_peaks_at_required_length() -> None:
    x = 600
    scores = [length_score(x, y) for y in range(0, 3000, 7)]
    assert all(0.0 <= s <= 100.0 for s in scores)
    below = [length_score(x, y) for y in range(1, x + 1)]
    above = [length_score(x, y) for y in range(x, 3 * x)]
    assert below == sorted(below) and above == sorted(above, reverse=True)
    with pytest.raises(ValueError):
        length_score(-1, 10)


def test_chinese_is_counted_by_characters() -> None:
    text = "秋天的风吹过田野。" * 100  # 8 CJK characters + one full stop per repeat
    assert count_words(text) == 800
    assert length_score_text(800, text) == 100.0
    assert length_score_text(1600, text) == 50.0
    assert length_score_text(1000, "") == 0.0
    assert count_words("Hello 世界, twice.") == 4


def test_mean_length_score() -> None:
    assert mean_length_score([1000, 1000, 1000], [1000, 500, 0]) == pytest.approx(50.0)
    assert mean_length_score([], []) is None
    with pytest.raises(ValueError):
        mean_length_score([1000], [])


def test_quality_score_maps_one_to_five_onto_zero_to_hundred() -> None:
    all_five = {d: 5 for d in QUALITY_DIMENSIONS}
    all_three = {d: 3 for d in QUALITY_DIMENSIONS}
    result = quality_score([all_five, all_three])  # every dimension mean 4 -> (4 - 1) * 25 = 75
    assert result["s_q"] == pytest.approx(75.0)
    assert result["dimensions"] == {d: pytest.approx(75.0) for d in QUALITY_DIMENSIONS}
    assert (result["n_samples"], result["n_scored"], result["dropped"]) == (2, 2, 0)
    assert quality_score([{d: 1 for d in QUALITY_DIMENSIONS}])["s_q"] == 0.0


def test_quality_score_drops_a_sample_missing_any_dimension_whole() -> None:
    # LongBench-Write's eval_quality.py keeps only judgements with all six dimensions.
    first = {"Relevance": 5, "Accuracy": 5, "Coherence": 5, "Clarity": 5, "Breadth_and_Depth": 5,
             "Reading Experience": 5}
    second = {"relevance": 2, "accuracy": 3, "coherence": 4, "clarity": 3, "breadth and depth": 2,
              "reading experience": 4}
    partial = {"relevance": 1, "accuracy": 1, "coherence": 1, "clarity": 1, "breadth and depth": 1,
               "reading experience": None}
    result = quality_score([first, second, partial])
    # kept: first and second. relevance (5+2)/2 = 3.5 -> 62.5; accuracy 4 -> 75; coherence 4.5 -> 87.5;
    # clarity 4 -> 75; breadth 3.5 -> 62.5; reading 4.5 -> 87.5; S_q = 450 / 6 = 75.
    assert result["dimensions"] == {"relevance": 62.5, "accuracy": 75.0, "coherence": 87.5, "clarity": 75.0,
                                    "breadth_and_depth": 62.5, "reading_experience": 87.5}
    assert result["s_q"] == pytest.approx(75.0)
    assert (result["n_samples"], result["n_scored"], result["dropped"]) == (3, 2, 1)
    # The project's old per-dimension reading would have let the partial sample pull five dimensions down.


def test_quality_score_without_a_complete_sample_has_no_s_q_and_rejects_bad_input() -> None:
    result = quality_score([{"relevance": 4}])
    assert result["s_q"] is None and result["dimensions"]["relevance"] is None and result["dropped"] == 1
    assert quality_score([])["s_q"] is None
    with pytest.raises(ValueError, match="unknown quality dimension"):
        quality_score([{"overall": 4}])
    with pytest.raises(ValueError, match="1-5"):
        quality_score([{"clarity": 6}])


def test_checklist_sample_score() -> None:
    assert checklist_score([8, 7, 6]) == 7.0
    assert checklist_score([10, 9, 8, 7, 6]) == 8.0
    assert checklist_score([8, None, 6]) is None  # an unknown criterion leaves the sample unscored
    assert checklist_score([None, None]) is None and checklist_score([]) is None
    with pytest.raises(ValueError):
        checklist_score([0])


def test_writingbench_overall_pools_every_criterion_score() -> None:
    # WritingBench calculate_scores.py: sum of all criterion scores / number of criterion scores.
    per_sample = [[10, 10, 10, 10, 10], [2, 4, 6, 8, 10], [3, 5], [9, None, 9]]
    result = writingbench_score(per_sample)
    # pooled over the three complete samples: (50 + 30 + 8) / 12 = 7.333..., whereas the mean of
    # the sample means would be (10 + 6 + 4) / 3 = 6.667.
    assert result["overall"] == pytest.approx(88 / 12)
    assert (result["n_samples"], result["n_scored"], result["dropped"], result["n_criteria"]) == (4, 3, 1, 12)
    assert writingbench_score([])["overall"] is None
    assert writingbench_score([[None]])["overall"] is None
    with pytest.raises(ValueError):
        writingbench_score([[11]])


def test_win_rates_keep_unknown_in_the_denominator() -> None:
    rates = win_rates(["win", "win", "tie", "loss", None, "unknown", "win", "loss"])
    assert rates == {"win": 3 / 8, "tie": 1 / 8, "loss": 2 / 8, "unknown": 2 / 8, "n": 8}
    assert win_rates([]) == {"win": 0.0, "tie": 0.0, "loss": 0.0, "unknown": 0.0, "n": 0}
    with pytest.raises(ValueError):
        win_rates(["first"])


@pytest.mark.parametrize(
    "verdict,policy_first,outcome",
    [("first", True, "win"), ("second", True, "loss"), ("first", False, "loss"), ("second", False, "win"),
     ("tie", True, "tie"), (None, False, None)],
)
def test_policy_outcome(verdict, policy_first: bool, outcome) -> None:
    assert policy_outcome(verdict, policy_first) == outcome
