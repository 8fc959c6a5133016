"""The local judge reads the six S_q dimensions from one shared prompt prefix: same probabilities
as six separate choose() calls, fewer tokens run, and the judge cache sees the same keys."""

from __future__ import annotations

import asyncio

import pytest

from longwriter.judges import CachedBackend, JudgeCache, LocalHFBackend, QualityDimensionsTask
from longwriter.judges.local_hf import _common_prefix_length
from test_judge_local_hf import model_and_tokenizer  # noqa: F401  (fixture)

OPTIONS = ("1", "2", "3", "4", "5")
DIMENSION_PREFILLS = ['{"relevance": ', '{"accuracy": ', '{"clarity": ', '{"reading_experience": ']


def messages(prefill: str, response: str = "An old pond. A frog jumps in. The sound of water.") -> list[dict]:
    return [{"role": "system", "content": "You are a strict judge."},
            {"role": "user", "content": f"Rate the response.\n\n[Response]\n{response}\n[End of Response]"},
            {"role": "assistant", "content": prefill}]


def run(coro):
    return asyncio.run(coro)


def test_common_prefix_leaves_every_prompt_a_token_of_its_own():
    assert _common_prefix_length([[1, 2, 3, 4], [1, 2, 3, 5], [1, 2, 9]]) == 2
    assert _common_prefix_length([[1, 2, 3], [1, 2, 3]]) == 2  # identical prompts still need their last token
    assert _common_prefix_length([[7], [7]]) == 0 and _common_prefix_length([]) == 0


def test_choose_many_equals_separate_calls(model_and_tokenizer):  # noqa: F811
    model, tokenizer = model_and_tokenizer
    one = LocalHFBackend(model, tokenizer, name="tiny")
    many = LocalHFBackend(model, tokenizer, name="tiny")
    requests = [messages(p) for p in DIMENSION_PREFILLS]
    separate = [run(one.choose(m, OPTIONS)) for m in requests]
    together = run(many.choose_many(requests, OPTIONS))
    assert len(together) == len(requests)
    for a, b in zip(separate, together):
        assert b.error is None
        assert [b.probs[o] for o in OPTIONS] == pytest.approx([a.probs[o] for o in OPTIONS], abs=1e-6)
    assert many.usage().requests == one.usage().requests == 4
    # colliding options ("1" vs "10": a trie walk past the prompt) also come out the same
    ten = tuple(str(i) for i in range(1, 11))
    a = [run(one.choose(messages("Score: ", r), ten)) for r in ("short", "a longer response here")]
    b = run(many.choose_many([messages("Score: ", r) for r in ("short", "a longer response here")], ten))
    for x, y in zip(a, b):
        assert [y.probs[o] for o in ten] == pytest.approx([x.probs[o] for o in ten], abs=1e-6)


def test_quality_task_reads_the_prompt_once_and_scores_the_same(model_and_tokenizer, monkeypatch):  # noqa: F811
    model, tokenizer = model_and_tokenizer
    backend = LocalHFBackend(model, tokenizer, name="tiny")
    seen = []
    forward = backend._forward_logprobs

    def counting(ids, cache=None):
        seen.append(len(ids))
        return forward(ids, cache)

    monkeypatch.setattr(backend, "_forward_logprobs", counting)
    fast = run(QualityDimensionsTask(backend).score("Write a haiku.", [], "An old pond. " * 20))
    slow = {}
    for dim in QualityDimensionsTask.dimensions:  # today's path: six full choose() calls
        msgs = QualityDimensionsTask(backend).messages(True, dimension=dim, prompt="Write a haiku.",
                                                       response="An old pond. " * 20)
        result = run(backend.choose(msgs, OPTIONS))
        slow[dim] = sum(float(o) * p for o, p in result.probs.items())
    assert fast.extra["dimensions"] == pytest.approx(slow, abs=1e-6)
    fast_tokens, slow_tokens = sum(seen[:7]), sum(seen[7:])
    assert len(seen[:7]) == 7  # the shared prefix once, then six short tails
    assert fast_tokens < slow_tokens / 3


def test_cached_backend_passes_misses_through_and_keeps_the_keys(model_and_tokenizer, tmp_path):  # noqa: F811
    model, tokenizer = model_and_tokenizer
    cache = JudgeCache(tmp_path / "judge.sqlite")
    backend = LocalHFBackend(model, tokenizer, name="tiny")
    requests = [messages(p) for p in DIMENSION_PREFILLS]
    run(CachedBackend(backend, cache).choose(requests[0], OPTIONS))  # one stored by a plain choose()
    cached = CachedBackend(backend, cache)
    results = run(cached.choose_many(requests, OPTIONS))
    assert [r.cached for r in results] == [True, False, False, False]
    assert backend.usage().requests == 4 and len(cache) == 4
    again = run(CachedBackend(backend, cache).choose(requests[2], OPTIONS))  # same key as choose()
    assert again.cached and again.probs == pytest.approx(results[2].probs)
