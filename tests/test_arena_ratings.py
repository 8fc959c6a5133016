"""Bradley-Terry on the Elo scale, checked against hand-computed fits."""

from __future__ import annotations

import math

import pytest

from longwriter.arena.ratings import Battle, fit_bradley_terry, rate


def battles(a: str, b: str, wins: int, ties: int, losses: int) -> list[Battle]:
    return [Battle(a, b, 1.0)] * wins + [Battle(a, b, 0.5)] * ties + [Battle(a, b, 0.0)] * losses


def test_two_models_odds_are_the_score_ratio():
    # A scores 2 wins + 1 tie = 2.5 points of 4, B 1.5: p_A / p_B = 2.5 / 1.5 = 5 / 3,
    # a gap of 400 * log10(5/3) = 88.74 points, centred on 1000.
    fit = fit_bradley_terry(battles("A", "B", 2, 1, 1), ["A", "B"], prior=0)
    gap = 400 * math.log10(5 / 3)
    assert fit["A"] == pytest.approx(1000 + gap / 2) and fit["B"] == pytest.approx(1000 - gap / 2)


def test_three_models_with_consistent_counts_recover_the_strengths():
    # Strengths 4 : 2 : 1 give P(A>B) = 2/3, P(B>C) = 2/3, P(A>C) = 4/5. With counts exactly in those
    # proportions the likelihood equations hold at p = (4, 2, 1): ratings 1000 + 400 log10(p / 2).
    data = battles("A", "B", 2, 0, 1) + battles("B", "C", 2, 0, 1) + battles("A", "C", 4, 0, 1)
    fit = fit_bradley_terry(data, ["A", "B", "C"], prior=0)
    assert fit["A"] == pytest.approx(1000 + 400 * math.log10(2))  # 1120.41
    assert fit["B"] == pytest.approx(1000.0)
    assert fit["C"] == pytest.approx(1000 - 400 * math.log10(2))  # 879.59


def test_prior_keeps_an_unbeaten_model_finite():
    # 3 wins of 3 plus one virtual tie each: A 3.5 points, B 0.5 of 4 -> odds 7, gap 400 log10 7 = 338.04.
    fit = fit_bradley_terry(battles("A", "B", 3, 0, 0), ["A", "B"], prior=1.0)
    assert fit["A"] - fit["B"] == pytest.approx(400 * math.log10(7))
    with pytest.raises(ValueError, match="prior"):
        fit_bradley_terry(battles("A", "B", 3, 0, 0), ["A", "B"], prior=0)


def test_rate_orders_counts_and_brackets_the_point_estimate():
    data = battles("A", "B", 6, 2, 2) + battles("B", "C", 6, 2, 2) + battles("A", "C", 8, 1, 1)
    table = rate(data, ["C", "B", "A"], bootstrap=100, seed=1)
    assert [r.name for r in table] == ["A", "B", "C"]
    a = table[0]
    assert (a.wins, a.ties, a.losses) == (14, 3, 3) and a.score_rate == pytest.approx(15.5 / 20)
    for r in table:
        assert r.ci_low <= r.rating <= r.ci_high and r.ci_high - r.ci_low > 0
    assert sum(r.rating for r in table) == pytest.approx(3000.0)


def test_bad_battles_are_refused():
    with pytest.raises(ValueError):
        fit_bradley_terry([Battle("A", "A", 1.0)], ["A", "B"])
    with pytest.raises(ValueError):
        fit_bradley_terry([Battle("A", "B", 0.7)], ["A", "B"])
