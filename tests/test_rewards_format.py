"""Tier 1: the format reward and the repetition measure behind it."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from longwriter.data.schema import Sample
from longwriter.rewards.base import BuildContext, RolloutBatch
from longwriter.rewards.format import FormatComponent, FormatConfig, parse_format
from longwriter.text import repetition_rate

PROSE = (
    "The harbour town woke slowly. Fishermen untangled their nets while gulls argued over scraps, "
    "and the baker opened her shutters to a street still wet from the night's rain. Nobody noticed "
    "the stranger at first; he sat by the fountain, reading a letter he had clearly read many times."
)
LOOP = "the cat sat. " * 30


def fmt(variant="think", **kw) -> FormatComponent:
    return FormatComponent(FormatConfig(variant=variant, **kw))


def think(answer: str, reasoning: str = "Plan: a quiet opening, then the stranger.") -> str:
    return f"<think>{reasoning}</think>\n<answer>{answer}</answer>"


def test_valid_think_answer_scores_one():
    reward, well_formed, repetition = fmt().check(think(PROSE))
    assert (reward, well_formed) == (1.0, True)
    assert repetition == 0.0  # no word trigram of PROSE occurs twice


@pytest.mark.parametrize(
    "completion",
    [
        f"<answer>{PROSE}</answer>",  # missing think
        f"<think>plan</think>{PROSE}",  # missing answer tags
        f"<think>plan</think><answer>{PROSE}",  # unclosed answer
        f"<think>plan</think><answer>{PROSE}</answer><answer>again</answer>",  # two answers
        f"<think>a</think><think>b</think><answer>{PROSE}</answer>",  # two thinks
        f"Sure! {think(PROSE)}",  # text before the tags
        f"{think(PROSE)} Hope this helps.",  # text after the tags
        f"<answer>{PROSE}</answer><think>plan</think>",  # wrong order
        think("   "),  # empty answer
        "",
    ],
)
def test_malformed_completions_score_zero(completion):
    reward, well_formed, _ = fmt().check(completion)
    assert (reward, well_formed) == (0.0, False)


def test_repetition_measured_values():
    # "a b c a b c": trigrams abc, bca, cab, abc -> 1 - 3/4
    assert repetition_rate("a b c a b c", n=3) == pytest.approx(0.25)
    assert repetition_rate("a b c d a b e", n=3) == 0.0
    # 30 x "the cat sat": 90 words, 88 trigrams, 3 distinct
    assert repetition_rate(LOOP, n=3) == pytest.approx(1 - 3 / 88)
    assert repetition_rate(LOOP, n=1) == pytest.approx(1 - 3 / 90)
    assert repetition_rate("short", n=3) == 0.0
    assert repetition_rate("The CAT, the cat; THE cat!", n=2) == pytest.approx(1 - 2 / 5)  # case and punctuation folded


def test_cjk_repetition_uses_characters():
    # period-4 loop over 40 characters: 38 trigrams, 4 distinct
    assert repetition_rate("好好学习" * 10, n=3) == pytest.approx(1 - 4 / 38)
    assert repetition_rate("春眠不觉晓处处闻啼鸟夜来风雨声花落知多少", n=3) == 0.0
    reward, well_formed, repetition = fmt().check(think("好好学习" * 10))
    assert (reward, well_formed) == (0.0, True) and repetition > 0.3


def test_repetitive_answer_gets_partial_credit_when_configured():
    assert fmt().check(think(LOOP))[0] == 0.0
    assert fmt(partial_credit=0.5).check(think(LOOP))[0] == 0.5
    # the threshold is a strict "greater than": 0.25 passes at 0.25, fails at 0.2
    assert fmt(repetition_threshold=0.25).check(think("a b c a b c"))[0] == 1.0
    assert fmt(repetition_threshold=0.2).check(think("a b c a b c"))[0] == 0.0


def test_no_think_variant():
    assert fmt("no_think").check(f"<answer>{PROSE}</answer>")[:2] == (1.0, True)
    assert fmt("no_think").check(f"  <answer>{PROSE}</answer>\n")[:2] == (1.0, True)
    assert fmt("no_think").check(think(PROSE))[:2] == (0.0, False)  # reasoning is not allowed
    assert fmt("no_think").check(f"Here: <answer>{PROSE}</answer>")[:2] == (0.0, False)
    assert fmt("think").check(f"<answer>{PROSE}</answer>")[:2] == (0.0, False)
    assert parse_format(f"<answer> {PROSE} </answer>", "no_think") == (PROSE, True)


def test_component_metrics_on_a_batch():
    completions = [think(PROSE), think(LOOP), PROSE, think("a b c a b c")]
    s = Sample(id="x", prompt=[{"role": "user", "content": "Write."}])
    batch = RolloutBatch([s] * 4, completions, np.zeros(4, dtype=int))
    result = asyncio.run(fmt(partial_credit=0.5).score(batch))
    np.testing.assert_allclose(result.rewards, [1.0, 0.5, 0.0, 1.0])
    m = result.metrics
    assert m["format/valid_rate"] == pytest.approx(2 / 4)
    assert m["format/well_formed_rate"] == pytest.approx(3 / 4)
    assert m["format/repetitive_rate"] == pytest.approx(1 / 4)
    assert m["format/repetition/mean"] == pytest.approx((0 + (1 - 3 / 88) + 0 + 0.25) / 4)


def test_variant_follows_the_recipe_template_and_plain_needs_one():
    assert FormatComponent.from_config({}, BuildContext(prompt_template="no_think")).config.variant == "no_think"
    with pytest.raises(ValueError, match="plain"):
        FormatComponent.from_config({}, BuildContext(prompt_template="plain"))
    assert FormatComponent.from_config({"variant": "think"}, BuildContext()).config.variant == "think"
    with pytest.raises(ValueError, match="partial_credit"):
        fmt(partial_credit=2.0)
