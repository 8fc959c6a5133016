"""Reward-hacking monitors: hand-computed distinct-n, repetition and length drift, the sampled
swap-disagreement check of the pairwise reward, and the monitors in every recipe's metrics."""

from __future__ import annotations

import asyncio
import math

import pytest

from longwriter.data.schema import Sample
from longwriter.rewards import build_recipe
from longwriter.rewards.base import RolloutBatch
from longwriter.rewards.monitors import batch_monitors, distinct_n, length_drift, length_record

from test_rewards_pairwise import ScriptedJudge, batch, component


def _sample(sid: str, length_range=(8, 12)) -> Sample:
    return Sample(id=sid, prompt=[{"role": "user", "content": "write"}], length_range=length_range)


def test_distinct_n_counts_ngrams_over_the_whole_batch():
    # unigrams: a b a | a c -> 5 total, {a, b, c} distinct -> 3/5
    assert distinct_n(["a b a", "A, c"], 1) == pytest.approx(3 / 5)
    # bigrams: (a b)(b a) | (a c) -> 3 total, 3 distinct; n-grams never cross texts
    assert distinct_n(["a b a", "a c"], 2) == pytest.approx(1.0)
    # two copies of one answer: half of the bigrams are repeats
    assert distinct_n(["x y z", "x y z"], 2) == pytest.approx(2 / 4)
    assert math.isnan(distinct_n(["one", ""], 2))
    with pytest.raises(ValueError):
        distinct_n(["a"], 0)


def test_length_drift_is_relative_to_the_middle_of_the_target_range():
    assert length_drift(10, (8, 12)) == pytest.approx(0.0)
    assert length_drift(20, (8, 12)) == pytest.approx(1.0)   # twice the target: padding
    assert length_drift(5, (8, 12)) == pytest.approx(-0.5)
    assert math.isnan(length_drift(5, None)) and math.isnan(length_drift(5, (0, 0)))


def test_batch_monitors_by_hand():
    loop = "the cat sat " * 4  # 12 words, trigrams: 10, distinct 3 -> repetition 0.7
    answers = [loop.strip(), "one two three four five"]
    metrics = batch_monitors([_sample("a"), _sample("b", None)], answers)
    assert metrics["monitor/repetition/mean"] == pytest.approx((0.7 + 0.0) / 2)
    assert metrics["monitor/repetition/max"] == pytest.approx(0.7)
    assert metrics["monitor/distinct_1"] == pytest.approx(8 / 17)  # {the cat sat one..five} over 12 + 5
    assert metrics["monitor/length_drift/mean"] == pytest.approx(12 / 10 - 1)  # the second has no target
    assert metrics["monitor/length_drift/abs_mean"] == pytest.approx(0.2)
    record = length_record(3, [_sample("a"), _sample("b", None)], answers)
    assert record == {"step": 3, "sample_ids": ["a", "b"], "words": [12, 5], "ranges": [[8, 12], None]}


def test_every_recipe_logs_the_monitors_on_the_answer_part():
    recipe = build_recipe({"name": "lwz", "combine": "mean_advantage", "prompt_template": "think",
                           "components": {"length": {}, "format": {}}})
    completions = ["<think>plan plan plan plan</think><answer>a b c d e f g h i j</answer>",
                   "<think>x</think><answer>a b c d e</answer>"]
    scores = asyncio.run(recipe.score(RolloutBatch([_sample("a"), _sample("b")], completions, [0, 0])))
    # measured on the answers only (10 and 5 words against a 10-word middle), not on the reasoning
    assert scores.metrics["monitor/length_drift/mean"] == pytest.approx((0.0 - 0.5) / 2)
    assert scores.metrics["monitor/repetition/mean"] == 0.0


def test_sampled_swap_check_measures_position_bias_without_changing_the_reward():
    # A judge that always prefers the first position: the reference is shown first, so the response
    # always loses; shown second in the check, it always wins -> every checked pair disagrees.
    judge = ScriptedJudge(bias="first")
    comp = component(judge, position="disadvantage", swap_check_fraction=0.5)
    result = asyncio.run(comp.score(batch({"s": ["good", "bad", "ok", "great"]})))
    assert list(result.rewards) == [0.0, 0.0, 0.0, 0.0]  # the reward still comes from the configured order
    assert result.metrics["judge/swap_checked"] == 2.0
    assert result.metrics["judge/swap_disagreement"] == 1.0
    assert len(judge.calls) == 4 + 2
    assert sum(1 for _, _, first, _ in judge.calls if first.startswith("ref")) == 4


def test_swap_check_of_an_unbiased_judge_agrees():
    judge = ScriptedJudge()
    comp = component(judge, position="disadvantage", swap_check_fraction=1.0)
    result = asyncio.run(comp.score(batch({"s": ["good", "bad"]})))
    assert result.metrics["judge/swap_checked"] == 2.0
    assert result.metrics["judge/swap_disagreement"] == 0.0


def test_swap_check_is_off_by_default_and_swap_position_reports_its_own_disagreement():
    judge = ScriptedJudge()
    result = asyncio.run(component(judge).score(batch({"s": ["good", "bad"]})))
    assert "judge/swap_disagreement" not in result.metrics and len(judge.calls) == 2
    biased = asyncio.run(component(ScriptedJudge(bias="first"), position="swap").score(batch({"s": ["good"]})))
    assert biased.metrics["judge/swap_disagreement"] == biased.metrics["judge/position_disagreement"] == 1.0
    with pytest.raises(ValueError, match="swap_check_fraction"):
        component(judge, swap_check_fraction=1.5)
