"""Following figures (evaluation/following.py): hand-computed cases, scipy as a second implementation,
and the length-blind ceilings DESIGN 7b quotes."""

from __future__ import annotations

import math
import random

import pytest

from longwriter.evaluation.following import following_figures, length_blind_ceiling, log_slope, spearman


def test_spearman_hand_computed_with_ties():
    # ranks x 1 2 3 4, y (10, 20, 20, 40) -> 1 2.5 2.5 4: rho = 4.5 / sqrt(5 * 4.5)
    assert spearman([1, 2, 3, 4], [10, 20, 20, 40]) == pytest.approx(4.5 / math.sqrt(5 * 4.5))
    assert spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert math.isnan(spearman([1], [2])) and math.isnan(spearman([1, 2, 3], [5, 5, 5]))
    with pytest.raises(ValueError, match="3 x values but 2 y values"):
        spearman([1, 2, 3], [1, 2])


def test_spearman_equals_scipys_on_random_integer_data():
    stats = pytest.importorskip("scipy.stats")
    rng = random.Random(0)
    for _ in range(20):
        x = [rng.randint(5, 15) for _ in range(12)]
        y = [rng.randint(1, 9) for _ in range(12)]
        assert spearman(x, y) == pytest.approx(stats.spearmanr(x, y).statistic)


def test_log_slope_is_one_for_proportional_and_zero_for_length_blind_answers():
    assert log_slope([10, 20, 40, 80], [15, 30, 60, 120]) == pytest.approx(1.0)
    assert log_slope([10, 20, 40, 80], [30, 30, 30, 30]) == pytest.approx(0.0)
    assert log_slope([10, 20, 40], [0, 20, 40]) == pytest.approx(1.0)  # an empty answer has no log: left out
    assert math.isnan(log_slope([10, 10], [5, 9]))


@pytest.mark.parametrize("targets, ceiling, best", [
    (range(20, 41, 5), 90.33, 30),            # the old default span: one length earns nearly everything
    ([12, 15, 18, 22, 27, 33, 40, 48, 58, 70, 80], 68.85, 37),   # the training counts now
    ([10, 14, 20, 30, 44, 64, 96], 56.94, 30),                    # the held-out counts now
])
def test_length_blind_ceiling(targets, ceiling, best):
    value, length = length_blind_ceiling(list(targets))
    assert value == pytest.approx(ceiling, abs=0.01) and length == best


def test_length_blind_ceiling_of_one_target_is_perfect_and_empty_is_refused():
    assert length_blind_ceiling([50]) == (100.0, 50)
    with pytest.raises(ValueError, match="at least one"):
        length_blind_ceiling([])


def test_following_figures_of_a_perfect_follower():
    figures = following_figures([10, 20, 40], [10, 20, 40], [False, True, False])
    assert figures["length_score"] == 100.0 and figures["spearman"] == pytest.approx(1.0)
    assert figures["log_slope"] == pytest.approx(1.0) and figures["truncated_rate"] == pytest.approx(1 / 3)
    assert figures["blind_ceiling"] < 100.0 and figures["median_words"] == 20
