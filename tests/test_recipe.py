"""Recipes built from config dicts: LongWriter-Zero, pairwise, hybrids; prompt templates."""

from __future__ import annotations

import asyncio
import math

import numpy as np
import pytest
from omegaconf import OmegaConf

from longwriter.advantages import combine_advantages
from longwriter.curriculum import CurriculumState
from longwriter.data.schema import Sample
from longwriter.judges.base import PairwiseJudgement, PointwiseJudgement
from longwriter.prompting import NO_THINK_INSTRUCTION, THINK_INSTRUCTION, answer_part, apply_prompt_template
from longwriter.rewards import RolloutBatch, build_recipe

LWZ = {"name": "longwriter_zero", "combine": "mean_advantage", "prompt_template": "think",
       "components": {"length": {"weight": 1.0, "l_max": 100},
                      "quality": {"weight": 1.0, "source": "judge"},
                      "format": {"weight": 1.0, "partial_credit": 0.0, "repetition_threshold": 0.3}}}
PAIRWISE = {"name": "pairwise", "combine": "sum_reward", "prompt_template": "plain",
            "components": {"pairwise": {"weight": 1.0, "position": "disadvantage", "win": 1.0, "tie": 0.5,
                                        "loss": 0.0, "unknown": "neutral"}}}
HYBRID = {"name": "hybrid", "combine": "sum_reward", "prompt_template": "think",
          "components": {"pairwise": {"weight": 2.0, "position": "swap"},
                         "length": {"weight": 1.0, "l_max": 100},
                         "format": {"weight": 0.5}}}


class LengthyJudge:
    """Scripted double of both judge protocols: longer answers are better (score = words / 10 + 1)."""

    async def compare(self, prompt, criteria, first, second):
        a, b = len(first.split()), len(second.split())
        return PairwiseJudgement("first" if a > b else "second" if b > a else "tie")

    async def score(self, prompt, criteria, response):
        return PointwiseJudgement(min(10.0, len(response.split()) / 10 + 1))


def words(n, offset=0):
    """n distinct letter-only words (LongBench-Write's counter skips digits: "w1" is no word)."""
    return " ".join("w" + letters(i + offset) for i in range(n))


def letters(i):
    out = chr(97 + i % 26)
    while i >= 26:
        i //= 26
        out = chr(97 + i % 26) + out
    return out


def think(answer):
    return f"<think>plan</think><answer>{answer}</answer>"


def make_batch(training=True):
    s1 = Sample(id="a", prompt=[{"role": "user", "content": "Write 40-60 words."}], length_range=(40, 60),
                references=[words(20), words(50)])
    s2 = Sample(id="b", prompt=[{"role": "user", "content": "Write 10-20 words."}], length_range=(10, 20),
                references=[words(15)])
    groups = [[think(words(50)), think(words(30)), words(45), think(words(80))],
              [think(words(12)), think(words(40)), think("x y z " * 10), think(words(15))]]
    return RolloutBatch.from_groups([s1, s2], groups, training=training)


def test_longwriter_zero_recipe():
    recipe = build_recipe(LWZ, pointwise_judge=LengthyJudge())
    assert [c.name for c in recipe.components] == ["length", "quality", "format"]
    assert recipe.combine == "mean_advantage" and recipe.prompt_template == "think"
    batch = make_batch()
    scores = asyncio.run(recipe.score(batch))
    np.testing.assert_allclose(scores.rewards["length"], [1.0, 0.75, 1.0, 0.5, 1.0, 0.75, 0.875, 1.0])
    np.testing.assert_allclose(scores.rewards["format"], [1, 1, 0, 1, 1, 1, 0, 1])
    np.testing.assert_allclose(scores.rewards["quality"][:2], [5 / 9, 3 / 9])  # (words/10 + 1 - 1) / 9
    for name in ("length", "quality", "format"):
        assert scores.metrics[f"reward/{name}/mean"] == pytest.approx(scores.rewards[name].mean())
    assert scores.metrics["format/valid_rate"] == 0.75  # 6 of 8 with well-formed tags
    assert scores.metrics["length/words/mean"] == pytest.approx((50 + 30 + 45 + 80 + 12 + 40 + 30 + 15) / 8)
    assert scores.metrics["quality/unknown_rate"] == 0.0
    assert 0.0 < scores.metrics["format/repetition/mean"] < 1.0  # the "x y z" answer repeats itself
    total = scores.rewards["length"] + scores.rewards["quality"] + scores.rewards["format"]
    assert scores.metrics["reward/total/mean"] == pytest.approx(total.mean())
    assert recipe.combine == "mean_advantage"
    # what both engines do with a scored batch: the recipe's weights and mode through the one formula
    advantages = combine_advantages(scores.rewards, recipe.weights, batch.group_index, recipe.combine, recipe.eps)
    assert advantages[2] < advantages[0]  # broken tags: no format reward


def test_pairwise_recipe_with_curriculum(tmp_path):
    state = CurriculumState(tmp_path / "c.sqlite")
    recipe = build_recipe(PAIRWISE, pairwise_judge=LengthyJudge(), curriculum=state)
    batch = make_batch()
    scores = asyncio.run(recipe.score(batch))
    # sample a: reference 20 words; sample b: reference 15 words. The plain template judges whole texts.
    assert list(scores.rewards) == ["pairwise"]
    assert scores.rewards["pairwise"][0] == 1.0 and scores.rewards["pairwise"][4] == 0.0
    rewards = scores.rewards["pairwise"]
    assert (scores.metrics["judge/win_rate"], scores.metrics["judge/tie_rate"], scores.metrics["judge/loss_rate"],
            scores.metrics["judge/unknown_rate"]) == (np.mean(rewards == 1.0), np.mean(rewards == 0.5),
                                                      np.mean(rewards == 0.0), 0.0)
    # levels the batch was judged at (all 0), before the wins move sample a up
    assert scores.metrics["curriculum/level/mean"] == 0.0 and scores.metrics["curriculum/level_hist/0"] == 1.0
    assert scores.metrics["reward/pairwise/mean"] == scores.metrics["reward/total/mean"] == pytest.approx(rewards.mean())
    assert state.snapshot() == {"a": 1, "b": 0}
    asyncio.run(recipe.score(make_batch(training=False)))
    assert state.snapshot() == {"a": 1, "b": 0}


def test_hybrid_recipe():
    recipe = build_recipe(HYBRID, pairwise_judge=LengthyJudge())
    assert recipe.weights == {"pairwise": 2.0, "length": 1.0, "format": 0.5}
    batch = make_batch()
    scores = asyncio.run(recipe.score(batch))
    assert scores.metrics["format/valid_rate"] == 0.75
    assert scores.metrics["judge/position_disagreement"] == 0.0  # the length judge ignores position
    # think template: the pairwise judge compares answers; 30 words beat a 20-word reference.
    assert scores.rewards["pairwise"][1] == 1.0
    expected_total = 2.0 * scores.rewards["pairwise"] + scores.rewards["length"] + 0.5 * scores.rewards["format"]
    np.testing.assert_allclose(scores.total, expected_total)
    assert recipe.combine == "sum_reward"


def test_component_reused_under_another_name_and_dictconfig():
    cfg = OmegaConf.create({"name": "two_judges", "combine": "mean_advantage",
                            "components": {
                                "pairwise": {"position": "disadvantage"},
                                "pairwise_adv": {"type": "pairwise", "position": "advantage", "weight": 0.5}}})
    recipe = build_recipe(cfg, pairwise_judge=LengthyJudge())
    scores = asyncio.run(recipe.score(make_batch()))
    # the reused type's metrics carry its name, so the two components' win rates do not overwrite each other
    assert scores.metrics["judge/win_rate"] == np.mean(scores.rewards["pairwise"] == 1.0)
    assert scores.metrics["pairwise_adv/judge/win_rate"] == np.mean(scores.rewards["pairwise_adv"] == 1.0)
    assert set(scores.rewards) == {"pairwise", "pairwise_adv"}


def test_config_errors_are_clear():
    with pytest.raises(KeyError, match=r"unknown reward component 'lenght'.*available: \[.*'format', 'length'"):
        build_recipe({"components": {"lenght": {}}})
    with pytest.raises(ValueError, match="unknown option"):
        build_recipe({"components": {"length": {"l_maximum": 3}}})
    with pytest.raises(ValueError, match="unknown key"):
        build_recipe({"components": {"length": {}}, "combine_mode": "sum_reward"})
    with pytest.raises(ValueError, match="combine mode"):
        build_recipe({"components": {"length": {}}, "combine": "normalize_then_sum"})
    with pytest.raises(ValueError, match="pairwise judge"):
        build_recipe(PAIRWISE)
    with pytest.raises(ValueError, match="components"):
        build_recipe({"name": "empty", "components": {}})
    with pytest.raises(ValueError, match="prompt template"):
        build_recipe({"components": {"length": {}}, "prompt_template": "cot"})


def test_prompt_templates():
    messages = [{"role": "user", "content": "Write a poem."}]
    assert apply_prompt_template(messages, "plain") == messages
    think = apply_prompt_template(messages, "think")
    assert think[0] == {"role": "system", "content": THINK_INSTRUCTION} and think[1:] == messages
    assert "<think>" in THINK_INSTRUCTION and "<answer>" in THINK_INSTRUCTION
    assert "<think>" not in NO_THINK_INSTRUCTION and "<answer>" in NO_THINK_INSTRUCTION
    with_system = [{"role": "system", "content": "Be brief."}, *messages]
    merged = apply_prompt_template(with_system, "no_think")
    assert merged[0]["content"] == f"Be brief.\n\n{NO_THINK_INSTRUCTION}" and len(merged) == 2
    assert with_system[0]["content"] == "Be brief."  # the input is not modified
    assert answer_part("<think>a</think><answer> b </answer>", "think") == "b"
    assert answer_part("<think>a</think><answer> b </answer>", "plain") == "<think>a</think><answer> b </answer>"
    with pytest.raises(ValueError, match="prompt template"):
        apply_prompt_template(messages, "cot")


def test_nan_metrics_for_an_all_unknown_component():
    recipe = build_recipe({"components": {"length": {}}})
    s = Sample(id="x", prompt=[{"role": "user", "content": "Write."}])  # no length range
    scores = asyncio.run(recipe.score(RolloutBatch([s, s], ["a", "b"], np.zeros(2, dtype=int))))
    assert math.isnan(scores.metrics["reward/length/mean"]) and scores.metrics["reward/length/unknown_rate"] == 1.0
    advantages = combine_advantages(scores.rewards, recipe.weights, np.zeros(2, dtype=int), recipe.combine, recipe.eps)
    np.testing.assert_array_equal(advantages, [0.0, 0.0])  # unknown is neutral


def test_component_registry_and_batch_validation():
    from longwriter.rewards import COMPONENTS, register_component

    assert {"length", "quality", "format", "pairwise"} <= set(COMPONENTS)
    with pytest.raises(ValueError, match="already registered"):
        register_component("length")(object)
    s = Sample(id="x", prompt=[{"role": "user", "content": "Write."}])
    with pytest.raises(ValueError, match="one sample and one group id"):
        RolloutBatch([s], ["a", "b"], np.zeros(2, dtype=int))
    with pytest.raises(ValueError, match="integers"):
        RolloutBatch([s], ["a"], np.zeros(1))
