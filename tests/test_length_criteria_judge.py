"""The TEST-ENVIRONMENT judge (length + criteria words, not a writing-quality judge): its rule by hand,
and its verdicts through the real OpenAI-compatible HTTP path of the pairwise reward."""

from __future__ import annotations

import asyncio

import pytest

from longwriter.data.schema import Sample
from longwriter.judges import PairwiseTask, build_judge_backend
from longwriter.judges.prompts import format_criteria
from longwriter.rewards.base import RolloutBatch
from longwriter.rewards.pairwise import PairwiseComponent, PairwiseConfig
from longwriter.testing.length_criteria_judge import LengthCriteriaRule, content_words, serve

REQUEST = "Write a note in about 10 words about the harbour lights."
CRITERIA = ["Mentions the harbour", "Describes the lights"]


def test_rule_by_hand():
    rule = LengthCriteriaRule(coverage_weight=0.5)
    assert rule.target(REQUEST) == 10  # "about 10" -> [8, 12], middle 10
    assert content_words(format_criteria(CRITERIA)) == {"mentions", "harbour", "describes", "lights"}
    criteria = format_criteria(CRITERIA)
    # 10 words, covers harbour + lights (2 of 4): 1.0 + 0.5 * 0.5
    assert rule.score(REQUEST, criteria, "The harbour lights shine softly over the dark water tonight") == \
        pytest.approx(1.0 + 0.25)
    # 5 words, no criteria word: 1 - 5/10
    assert rule.score(REQUEST, criteria, "one two three four five") == pytest.approx(0.5)
    # 30 words: three times the target, closeness 0
    assert rule.score(REQUEST, criteria, "word " * 30) == 0.0


def _backend(server):
    return build_judge_backend({"backend": "openai", "base_url": server.base_url, "model": "test-env",
                                "api_key_required": False, "concurrency": 4, "cache": False})


def test_verdicts_over_http_prefer_the_closer_length_and_have_no_position_bias():
    sample = Sample(id="s", prompt=[{"role": "user", "content": REQUEST}], criteria=CRITERIA,
                    references=["lights", "The harbour lights shine softly over the dark water tonight"])
    good = "Soft harbour lights shine over the water and guide boats home"
    short = "lights"
    server = serve()
    try:
        backend = _backend(server)
        component = PairwiseComponent(PairwiseTask(backend), PairwiseConfig(position="swap"))
        batch = RolloutBatch.from_groups([sample], [[good, short, "x " * 40]])

        async def score():
            try:
                return await component.score(batch)
            finally:
                await backend.aclose()

        result = asyncio.run(score())
    finally:
        server.stop()
    # against level 0 ("lights"): the 11-word answer wins, the identical answer ties, 40 words of "x" lose
    assert list(result.rewards) == [1.0, 0.5, 0.0]
    assert result.metrics["judge/swap_disagreement"] == 0.0
    assert result.metrics["judge/unknown_rate"] == 0.0
