"""Judge retries as the reference code does them: an unreadable reply is asked again, the cache
keeps every attempt apart, and integer-only WritingBench scores."""

from __future__ import annotations

import asyncio

from longwriter.judges.base import ChatResult, ChoiceResult, Usage
from longwriter.judges.cache import CachedBackend, JudgeCache
from longwriter.judges.parsers import parse_checklist_score
from longwriter.judges.tasks import CHECKLIST_TRIES, QUALITY_TRIES, ChecklistTask, QualityDimensionsTask

FULL = ('{"relevance": 5, "accuracy": 4, "coherence": 4, "clarity": 3, "breadth_and_depth": 2, '
        '"reading_experience": 5}')
PARTIAL = '{"relevance": 5, "accuracy": 4}'


class ScriptedBackend:
    """A chat endpoint replying from a list, one reply per call (the external boundary)."""

    identity = "scripted"

    def __init__(self, replies):
        self.replies = list(replies)
        self.calls = 0

    async def chat(self, messages, max_tokens):
        reply = self.replies[min(self.calls, len(self.replies) - 1)]
        self.calls += 1
        return ChatResult(text=reply)

    async def choose(self, messages, options):
        return ChoiceResult(None, error="chat only")

    def usage(self):
        return Usage()


def run(coro):
    return asyncio.run(coro)


def test_quality_judgement_missing_a_dimension_is_asked_again():
    backend = ScriptedBackend([PARTIAL, "no json", FULL])
    judgement = run(QualityDimensionsTask(backend).score("Write.", (), "text"))
    assert backend.calls == 3 and judgement.error is None
    assert judgement.extra["dimensions"]["breadth_and_depth"] == 2


def test_quality_judgement_gives_up_after_the_reference_number_of_tries():
    backend = ScriptedBackend([PARTIAL])
    judgement = run(QualityDimensionsTask(backend).score("Write.", (), "text"))
    assert backend.calls == QUALITY_TRIES == 5
    assert judgement.error and judgement.extra["dimensions"]["clarity"] is None


def test_checklist_item_retries_non_integer_scores():
    backend = ScriptedBackend(['{"score": 7.5, "reason": "x"}', '{"score": "8", "reason": "x"}',
                               '{"score": 8, "reason": "x"}'])
    judgement = run(ChecklistTask(backend).score_item("Write.", "Clear.", "text"))
    assert backend.calls == 3 and judgement.score == 8.0
    backend = ScriptedBackend(["Score: 6.5"])
    assert run(ChecklistTask(backend).score_item("Write.", "Clear.", "text")).score is None
    assert backend.calls == CHECKLIST_TRIES == 3


def test_integer_scale_of_the_checklist_parser():
    assert parse_checklist_score('{"score": 8.0}')[0] == 8.0  # 8.0 == 8 in WritingBench's check
    assert parse_checklist_score('{"score": 7.5}')[0] is None
    assert parse_checklist_score("Score: 9")[0] == 9.0 and parse_checklist_score("Score: 9.5")[0] is None


def test_cached_retries_have_their_own_keys_and_replay(tmp_path):
    inner = ScriptedBackend([PARTIAL, FULL])
    cache = JudgeCache(tmp_path / "judge.sqlite")
    judgement = run(QualityDimensionsTask(CachedBackend(inner, cache)).score("Write.", (), "text"))
    assert inner.calls == 2 and judgement.error is None  # the stored partial answer was not read back
    assert len(cache) == 2
    again = ScriptedBackend(["never asked"])
    judgement = run(QualityDimensionsTask(CachedBackend(again, cache)).score("Write.", (), "text"))
    assert again.calls == 0 and judgement.cached and judgement.extra["dimensions"]["relevance"] == 5
