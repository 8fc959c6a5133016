"""Tier 1: DAPO's soft overlong penalty (eq. 13), branch by branch, its limits, and its place in a recipe."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from longwriter.data.schema import Sample
from longwriter.rewards import build_recipe
from longwriter.rewards.base import RolloutBatch
from longwriter.rewards.overlong import SoftOverlongComponent, SoftOverlongConfig, resolve_limits, \
    soft_overlong_penalty


@pytest.mark.parametrize("tokens, expected", [
    (0, 0.0),
    (80, 0.0),      # |y| = L_max - L_cache: still free
    (81, -0.05),    # (80 - 81) / 20
    (90, -0.5),
    (100, -1.0),    # |y| = L_max: the end of the buffer
    (101, -1.0),    # beyond L_max
    (10_000, -1.0),
])
def test_penalty_hand_computed(tokens: int, expected: float) -> None:
    assert soft_overlong_penalty(tokens, l_max=100, l_cache=20) == pytest.approx(expected, abs=1e-12)


def test_penalty_equals_trls_own_function() -> None:
    """trl.rewards.get_soft_overlong_punishment (trl/rewards/other_rewards.py) implements the same eq. 13."""
    rewards = pytest.importorskip("trl.rewards")
    for l_max, l_cache in ((100, 20), (16, 1), (7, 6)):
        lengths = range(0, l_max + 5)
        theirs = rewards.get_soft_overlong_punishment(l_max, l_cache)([[1] * n for n in lengths])
        ours = [soft_overlong_penalty(n, l_max, l_cache) for n in lengths]
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-12)


def score(tokens, l_max=None, l_cache=None, budget=100):
    n = len(tokens)
    samples = [Sample(id=f"s{i}", prompt=[{"role": "user", "content": "Write."}]) for i in range(n)]
    batch = RolloutBatch(samples, ["text"] * n, np.zeros(n, dtype=int), completion_tokens=np.array(tokens))
    return asyncio.run(SoftOverlongComponent(SoftOverlongConfig(l_max, l_cache), budget).score(batch))


def test_component_defaults_to_the_engine_budget_and_a_fifth_of_it_as_buffer() -> None:
    out = score([10, 80, 90, 100], budget=100)  # L_max 100, L_cache 20
    np.testing.assert_allclose(out.rewards, [0.0, 0.0, -0.5, -1.0])
    assert out.metrics["overlong/tokens/mean"] == 70.0
    assert out.metrics["overlong/buffer_rate"] == 0.5
    assert out.metrics["overlong/over_rate"] == 0.0


def test_component_with_l_max_below_the_budget_gives_minus_one_past_it() -> None:
    out = score([40, 50, 60, 99], l_max=50, l_cache=10, budget=100)
    np.testing.assert_allclose(out.rewards, [0.0, -1.0, -1.0, -1.0])
    assert out.metrics["overlong/over_rate"] == 0.5


def test_equal_lengths_give_an_all_equal_group() -> None:
    out = score([95, 95, 95])
    np.testing.assert_allclose(out.rewards, [-0.75] * 3)  # (80 - 95) / 20


def test_a_batch_without_token_counts_is_refused() -> None:
    batch = RolloutBatch([Sample(id="s", prompt=[{"role": "user", "content": "Write."}])], ["text"], np.zeros(1, int))
    with pytest.raises(ValueError, match="token count"):
        asyncio.run(SoftOverlongComponent(SoftOverlongConfig(), 100).score(batch))


@pytest.mark.parametrize("l_max, l_cache, budget, message", [
    (None, 0, 100, "l_cache must be a whole number of tokens > 0"),
    (None, -5, 100, "l_cache must be a whole number of tokens > 0"),
    (None, 100, 100, "l_cache=100 must be < l_max=100"),
    (50, 60, 100, "l_cache=60 must be < l_max=50"),
    (200, 20, 100, "l_max=200 exceeds engine.max_completion_length=100"),
    (None, 10, None, "no engine budget is known"),
    (1.5, 1, None, "l_max must be a whole number of tokens >= 2"),
    (True, 1, None, "l_max must be a whole number"),
    (None, 2.5, 100, "l_cache must be a whole number"),
])
def test_bad_limits_are_clear_errors(l_max, l_cache, budget, message) -> None:
    with pytest.raises(ValueError, match=message):
        resolve_limits(l_max, l_cache, budget)


def test_limits_resolved() -> None:
    assert resolve_limits(None, None, 20480) == (20480, 4096)  # DAPO's numbers
    assert resolve_limits(64, None, None) == (64, 13)
    assert resolve_limits(None, 1, 2) == (2, 1)


def test_any_recipe_takes_it_by_type_with_the_engine_budget() -> None:
    recipe = build_recipe({"name": "t", "components": {"length": {}, "overlong": {"type": "soft_overlong",
                                                                                    "weight": 0.5, "l_cache": 4}}},
                          max_completion_tokens=16)
    samples = [Sample(id="a", prompt=[{"role": "user", "content": "Write 3 words."}], length_range=(2, 4))] * 2
    batch = RolloutBatch(samples, ["one two three", "one two three"], np.zeros(2, dtype=int),
                         completion_tokens=np.array([12, 14]))
    scores = asyncio.run(recipe.score(batch))
    np.testing.assert_allclose(scores.rewards["overlong"], [0.0, -0.5])
    np.testing.assert_allclose(scores.total, [1.0, 0.75])
    assert "overlong/overlong/buffer_rate" in scores.metrics  # a renamed component's metrics carry its name
    with pytest.raises(ValueError, match="unknown option"):
        build_recipe({"name": "t", "components": {"soft_overlong": {"l_buffer": 4}}}, max_completion_tokens=16)
    with pytest.raises(ValueError, match="l_cache=16 must be < l_max=16"):
        build_recipe({"name": "t", "components": {"soft_overlong": {"l_cache": 16}}}, max_completion_tokens=16)


def test_verl_reward_manager_hands_the_response_token_count_to_the_component() -> None:
    pytest.importorskip("verl", reason="the verl extra is not installed")
    from longwriter.engines.verl.reward import LongWriterRewardManager

    manager = object.__new__(LongWriterRewardManager)  # only score_text is exercised
    manager.recipe = build_recipe({"name": "t", "components": {"soft_overlong": {"l_cache": 4}}},
                                  max_completion_tokens=16)
    sample = Sample(id="a", prompt=[{"role": "user", "content": "Write."}])
    out = asyncio.run(manager.score_text(sample, "text", "uid-1", True, tokens=14))
    assert out["reward_score"] == pytest.approx(-0.5)  # (12 - 14) / 4
    assert out["reward_extra_info"]["soft_overlong"] == pytest.approx(-0.5)
    assert out["reward_extra_info"]["overlong/buffer_rate"] == 1.0
