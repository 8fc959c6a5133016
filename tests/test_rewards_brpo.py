"""Tier 1: the reference-free pairwise reward (Writing-Zero's BRPO): bootstrapped in-group references,
positions, unknown verdicts, degenerate groups, and its place in a recipe."""

from __future__ import annotations

import asyncio
import math
import random

import numpy as np
import pytest

from longwriter.advantages import grpo_advantages
from longwriter.data.schema import Sample
from longwriter.judges.base import PairwiseJudgement
from longwriter.rewards import build_recipe
from longwriter.rewards.base import RolloutBatch
from longwriter.rewards.brpo import BootstrapPairwiseComponent, BootstrapPairwiseConfig, draw_references

STRENGTH = {"bad": 0, "ok": 2, "good": 3, "great": 4, "ok2": 2}


class ScriptedJudge:
    """Verdict from the texts' hidden strengths; `bias` always picks one position; "???" is unreadable."""

    def __init__(self, bias: str | None = None):
        self.bias = bias
        self.calls: list[tuple[str, str]] = []

    async def compare(self, prompt, criteria, first, second) -> PairwiseJudgement:
        self.calls.append((first, second))
        if "???" in (first, second):
            return PairwiseJudgement(None, raw="no marker", error="unparsable")
        if self.bias:
            return PairwiseJudgement(self.bias)
        a, b = STRENGTH[first], STRENGTH[second]
        return PairwiseJudgement("first" if a > b else "second" if b > a else "tie")


def batch(*groups: list[str]) -> RolloutBatch:
    samples = [Sample(id=f"p{g}", prompt=[{"role": "user", "content": f"prompt {g}"}]) for g in range(len(groups))]
    return RolloutBatch.from_groups(samples, list(groups))


def run(component, b):
    return asyncio.run(component.score(b))


def test_each_completion_is_judged_against_the_drawn_reference_of_its_group() -> None:
    b = batch(["bad", "good", "great"], ["ok", "great"])
    refs = draw_references(b.group_index, random.Random(7))  # what the component draws with seed 7
    judge = ScriptedJudge()
    out = run(BootstrapPairwiseComponent(judge, BootstrapPairwiseConfig(position="disadvantage", seed=7)), b)
    texts = b.completions
    for i, text in enumerate(texts):
        ref = refs[int(b.group_index[i])]
        expected = 0.5 if i == ref else 1.0 if STRENGTH[text] > STRENGTH[texts[ref]] else \
            0.0 if STRENGTH[text] < STRENGTH[texts[ref]] else 0.5
        assert out.rewards[i] == expected, (i, ref)
    # disadvantage: the reference is shown first; one call per non-reference completion
    assert sorted(judge.calls) == sorted((texts[refs[int(b.group_index[i])]], texts[i])
                                         for i in range(len(texts)) if i != refs[int(b.group_index[i])])
    assert out.labels["verdict"].count("reference") == 2


def test_hand_computed_group_with_a_fixed_reference(monkeypatch) -> None:
    # Reference "ok" (strength 2): bad loses, good and great win, the reference ties with itself.
    monkeypatch.setattr("longwriter.rewards.brpo.draw_references", lambda groups, rng: {0: 1})
    out = run(BootstrapPairwiseComponent(ScriptedJudge(), BootstrapPairwiseConfig(position="swap")),
              batch(["bad", "ok", "good", "great"]))
    np.testing.assert_array_equal(out.rewards, [0.0, 0.5, 1.0, 1.0])
    assert out.metrics["brpo/win_rate"] == pytest.approx(2 / 3)
    assert out.metrics["brpo/loss_rate"] == pytest.approx(1 / 3)
    assert out.metrics["brpo/position_disagreement"] == 0.0


def test_swap_cancels_a_position_biased_judge() -> None:
    out = run(BootstrapPairwiseComponent(ScriptedJudge(bias="first"), BootstrapPairwiseConfig(position="swap")),
              batch(["bad", "great", "ok"]))
    np.testing.assert_array_equal(out.rewards, [0.5, 0.5, 0.5])  # every pair disagrees across orders -> tie
    assert out.metrics["brpo/position_disagreement"] == 1.0
    assert grpo_advantages(out.rewards, np.zeros(3, dtype=int)).tolist() == [0.0, 0.0, 0.0]


def test_all_equal_group_ties_everywhere() -> None:
    out = run(BootstrapPairwiseComponent(ScriptedJudge()), batch(["ok", "ok2", "ok"]))
    np.testing.assert_array_equal(out.rewards, [0.5, 0.5, 0.5])
    assert out.metrics["brpo/tie_rate"] == 1.0


def test_unknown_verdict_is_neutral_and_counted(monkeypatch) -> None:
    monkeypatch.setattr("longwriter.rewards.brpo.draw_references", lambda groups, rng: {0: 0})
    out = run(BootstrapPairwiseComponent(ScriptedJudge()), batch(["ok", "???", "great"]))
    assert out.rewards[0] == 0.5 and math.isnan(out.rewards[1]) and out.rewards[2] == 1.0
    assert out.metrics["brpo/unknown_rate"] == 0.5
    assert out.labels["verdict"] == ["reference", "unknown", "win"]


def test_a_single_completion_group_has_nothing_to_compare_with() -> None:
    judge = ScriptedJudge()
    out = run(BootstrapPairwiseComponent(judge), batch(["great"], ["bad", "great"]))
    assert math.isnan(out.rewards[0])
    assert not np.isnan(out.rewards[1:]).any()
    assert len(judge.calls) == 2  # only group 1: one comparison, both orders (swap)


def test_draws_are_reproducible_from_the_seed_and_vary_between_batches() -> None:
    groups = np.repeat(np.arange(20), 4)
    first, again = random.Random(3), random.Random(3)
    a, b = draw_references(groups, first), draw_references(groups, again)
    assert a == b
    assert draw_references(groups, first) != a  # the next batch draws afresh
    assert all(int(groups[row]) == g for g, row in a.items())


def test_recipe_config_and_errors() -> None:
    recipe = build_recipe({"name": "brpo", "components": {"bootstrap_pairwise": {"position": "advantage"}}},
                          pairwise_judge=ScriptedJudge())
    scores = asyncio.run(recipe.score(batch(["bad", "great"])))
    assert sorted(scores.rewards["bootstrap_pairwise"].tolist()) in ([0.0, 0.5], [0.5, 1.0])
    with pytest.raises(ValueError, match="needs a pairwise judge"):
        build_recipe({"name": "brpo", "components": {"bootstrap_pairwise": {}}})
    with pytest.raises(ValueError, match="position must be one of"):
        build_recipe({"name": "brpo", "components": {"bootstrap_pairwise": {"position": "middle"}}},
                     pairwise_judge=ScriptedJudge())


def test_a_brpo_recipe_gets_a_judge_and_no_curriculum() -> None:
    from omegaconf import OmegaConf

    from longwriter.training_setup import needs_judge

    assert needs_judge(OmegaConf.create({"components": {"ref_free": {"type": "bootstrap_pairwise"}}}))
