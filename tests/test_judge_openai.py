"""The OpenAI-compatible backend against a real local HTTP server (FakeOpenAIServer on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import json
import logging
import time

import pytest

from longwriter.judges import (
    CachedBackend,
    JudgeError,
    LengthRangeTask,
    OpenAIBackend,
    OpenAISettings,
    PairwiseTask,
    PointwiseTask,
    QualityDimensionsTask,
    build_judge_backend,
)
from longwriter.testing.fake_openai_server import Delay, Error, FakeOpenAIServer, Raw, Reply
from longwriter.judges.ratelimit import RateLimiter, TokenBucket

from conftest import compose

KEY_ENV = "LW_TEST_JUDGE_KEY"
SECRET = "sk-test-SECRET-4242"


@pytest.fixture
def server():
    with FakeOpenAIServer(default_reply="Verdict: [[C]]") as srv:
        yield srv


@pytest.fixture
def make_backend(server, monkeypatch):
    monkeypatch.setenv(KEY_ENV, SECRET)

    def make(**overrides) -> OpenAIBackend:
        settings = dict(base_url=server.base_url, model="fake-judge", api_key_env=KEY_ENV, timeout_s=5.0,
                        max_retries=3, backoff_s=0.01, rpm=None, tpm=None)
        settings.update(overrides)
        return OpenAIBackend(OpenAISettings(**settings), seed=0)

    return make


def run(coro):
    return asyncio.run(coro)


def test_pairwise_verdicts_from_markers_and_unknown_for_malformed(server, make_backend) -> None:
    task = PairwiseTask(make_backend())
    server.script(Reply("A is richer.\nVerdict: [[A]]"), Reply("Verdict: [[B]]"), Reply("Verdict: [[C]]"),
                  Reply("Response A is clearly better."), Reply("Verdict: [[A]] or [[B]]"))

    async def judge_all():
        return [await task.compare("Write a poem.", [], "first text", "second text") for _ in range(5)]

    results = run(judge_all())
    assert [r.verdict for r in results] == ["first", "second", "tie", None, None]
    assert results[3].error == "no verdict marker" and results[3].raw == "Response A is clearly better."
    body = server.chat_requests[0].body
    user = body["messages"][-1]["content"]
    assert user.index("first text") < user.index("second text")  # A = first, B = second
    assert "[[A]]" in user and body["model"] == "fake-judge" and body["temperature"] == 0


def test_criteria_reach_the_judge_prompt(server, make_backend) -> None:
    run(PairwiseTask(make_backend()).compare("p", ["Uses exactly three stanzas"], "x", "y"))
    run(PairwiseTask(make_backend()).compare("p", [], "x", "y"))
    first, second = (r.body["messages"][-1]["content"] for r in server.chat_requests)
    assert "Uses exactly three stanzas" in first and "Relevance" not in first
    assert "Relevance" in second  # generic criteria when the sample has none


def test_completion_budget_is_the_config_cap_unless_the_task_asks_for_less(server, make_backend) -> None:
    backend = make_backend(max_tokens=300)
    for task in (PairwiseTask(backend), PairwiseTask(backend, max_tokens=2000), PairwiseTask(backend, max_tokens=100)):
        run(task.compare("p", [], "a", "b"))
    assert [r.body["max_tokens"] for r in server.chat_requests] == [300, 300, 100]
    run(PairwiseTask(make_backend(max_tokens_field="max_completion_tokens")).compare("p", [], "a", "b"))
    assert "max_tokens" not in server.chat_requests[-1].body and server.chat_requests[-1].body["max_completion_tokens"]


def test_429_then_success_honours_retry_after(server, make_backend) -> None:
    backend = make_backend()
    server.script(Error(429, retry_after=0.3), Reply("Verdict: [[B]]"))
    start = time.monotonic()
    judgement = run(PairwiseTask(backend).compare("p", [], "a", "b"))
    assert judgement.verdict == "second"
    assert time.monotonic() - start >= 0.3
    usage = backend.usage()
    assert (usage.requests, usage.retries, usage.failures) == (2, 1, 0)


def test_500_then_success(server, make_backend) -> None:
    backend = make_backend()
    server.script(Error(500), Error(503), Reply("Verdict: [[A]]"))
    assert run(PairwiseTask(backend).compare("p", [], "a", "b")).verdict == "first"
    assert (backend.usage().retries, backend.usage().failures) == (2, 0)


def test_persistent_500_is_a_recorded_failure_not_an_exception(server, make_backend) -> None:
    backend = make_backend(max_retries=2)
    server.script(*[Error(500)] * 3)
    judgement = run(PairwiseTask(backend).compare("p", [], "a", "b"))
    assert judgement.verdict is None and "HTTP 500" in judgement.error and "3 attempts" in judgement.error
    usage = backend.usage()
    assert (usage.requests, usage.retries, usage.failures) == (3, 2, 1)


def test_other_4xx_is_not_retried(server, make_backend) -> None:
    backend = make_backend()
    server.script(Error(400, message="context too long"))
    result = run(backend.chat([{"role": "user", "content": "hi"}], 16))
    assert result.text is None and "context too long" in result.error
    assert (backend.usage().requests, backend.usage().retries, backend.usage().failures) == (1, 0, 1)


def test_malformed_response_body_is_a_failure(server, make_backend) -> None:
    backend = make_backend()
    server.script(Raw("<html>bad gateway</html>"))
    result = run(backend.chat([{"role": "user", "content": "hi"}], 16))
    assert result.text is None and "malformed" in result.error
    assert backend.usage().failures == 1


def test_timeout_is_retried_then_fails_when_persistent(server, make_backend) -> None:
    backend = make_backend(timeout_s=0.3, max_retries=1)
    server.script(Delay(1.0), Reply("Verdict: [[A]]"))
    assert run(PairwiseTask(backend).compare("p", [], "a", "b")).verdict == "first"
    assert backend.usage().retries == 1 and backend.usage().failures == 0

    server.script(Delay(1.0), Delay(1.0))
    start = time.monotonic()
    judgement = run(PairwiseTask(backend).compare("p", [], "a", "b"))
    assert judgement.verdict is None and "timeout" in judgement.error
    assert time.monotonic() - start < 1.5  # gave up on its own timeout, did not wait for the server
    assert backend.usage().failures == 1


def test_concurrency_bound_is_respected(server, make_backend) -> None:
    server.latency = 0.1
    backend = make_backend(concurrency=4)
    task = PairwiseTask(backend)

    async def many():
        return await asyncio.gather(*(task.compare("p", [], f"a{i}", "b") for i in range(20)))

    start = time.monotonic()
    results = run(many())
    elapsed = time.monotonic() - start
    assert all(r.verdict == "tie" for r in results)
    assert server.max_in_flight == 4  # saturated, never exceeded
    assert backend.limiter.max_in_flight == 4
    assert elapsed >= 0.5  # 20 requests / 4 at a time * 0.1 s


def test_token_and_cost_accounting(server, make_backend) -> None:
    backend = make_backend(price_per_1m_input=2.0, price_per_1m_output=8.0)
    task = PointwiseTask(backend)
    server.script(Reply("Good.\nScore: 8"), Reply("Weak.\nScore: 3"))

    async def both():
        return [await task.score("Write an essay.", [], "essay one"), await task.score("Write", [], "two")]

    scores = run(both())
    assert [s.score for s in scores] == [8.0, 3.0]
    served = [r.usage for r in server.chat_requests]
    prompt = sum(u["prompt_tokens"] for u in served)
    completion = sum(u["completion_tokens"] for u in served)
    usage = backend.usage()
    assert (usage.prompt_tokens, usage.completion_tokens) == (prompt, completion) and prompt > 0
    assert usage.cost_usd == pytest.approx((prompt * 2.0 + completion * 8.0) / 1e6)


def test_api_key_only_in_authorization_header_never_in_repr_or_logs(server, make_backend, caplog) -> None:
    caplog.set_level(logging.DEBUG)  # everything: openai, httpx, longwriter
    backend = make_backend(max_retries=1)
    server.script(Error(429, retry_after=0.01), Reply("Verdict: [[A]]"), Error(500), Error(500))

    async def calls():
        await backend.check()
        await PairwiseTask(backend).compare("p", [], "a", "b")
        await PairwiseTask(backend).compare("p", [], "c", "d")  # fails after retries: logged warning

    run(calls())
    assert server.requests, "no request reached the server"
    for request in server.requests:
        auth = {k.lower(): v for k, v in request.headers.items()}["authorization"]
        assert auth == f"Bearer {SECRET}"
        others = {k: v for k, v in request.headers.items() if k.lower() != "authorization"}
        assert SECRET not in json.dumps(others) and SECRET.encode() not in request.raw_body
    assert SECRET not in repr(backend) and SECRET not in str(backend)
    assert SECRET not in repr(build_judge_backend(
        {"backend": "openai", "base_url": server.base_url, "api_key_env": KEY_ENV, "cache": False}))
    assert caplog.records and any("failed" in r.getMessage() for r in caplog.records)
    for record in caplog.records:
        assert SECRET not in record.getMessage() and SECRET not in str(record.args)


def test_missing_key_raises_one_clear_error(monkeypatch) -> None:
    monkeypatch.delenv("LW_TEST_MISSING_KEY", raising=False)
    with pytest.raises(JudgeError, match="LW_TEST_MISSING_KEY"):
        OpenAIBackend(OpenAISettings(api_key_env="LW_TEST_MISSING_KEY"))
    # local servers: the key may be absent
    OpenAIBackend(OpenAISettings(api_key_env="LW_TEST_MISSING_KEY", api_key_required=False))


def test_check_fails_fast_on_unreachable_endpoint_and_bad_key(server, make_backend, monkeypatch) -> None:
    run(make_backend().check())  # reachable: no error
    closed = FakeOpenAIServer().start()
    dead_url = closed.base_url
    closed.stop()
    with pytest.raises(JudgeError, match=r"judge endpoint http://127\.0\.0\.1:\d+/v1 unreachable: .*"
                                         r"start the server or set judge.base_url"):
        run(make_backend(base_url=dead_url).check())
    server.api_key = "another-key"
    with pytest.raises(JudgeError, match=f"rejected the API key from \\${KEY_ENV}"):
        run(make_backend().check())


def test_unreachable_endpoint_during_training_yields_unknown(make_backend) -> None:
    closed = FakeOpenAIServer().start()
    dead_url = closed.base_url
    closed.stop()
    backend = make_backend(base_url=dead_url, max_retries=2)
    judgement = run(PairwiseTask(backend).compare("p", [], "a", "b"))
    assert judgement.verdict is None and "connection error" in judgement.error
    assert (backend.usage().failures, backend.usage().retries) == (1, 2)


def test_backend_survives_several_event_loops(server, make_backend) -> None:
    """A startup check under asyncio.run, then judging on another loop (as TRL's daemon loop does)."""
    backend = make_backend(concurrency=2, rpm=6000)
    run(backend.check())
    assert run(PairwiseTask(backend).compare("p", [], "a", "b")).verdict == "tie"
    assert run(PairwiseTask(backend).compare("p", [], "a", "b")).verdict == "tie"


def test_other_tasks_over_the_api(server, make_backend) -> None:
    backend = make_backend()
    server.script(
        Reply('{"relevance": 5, "accuracy": 4, "coherence": 4, "clarity": 3, "breadth_and_depth": 4, '
              '"reading_experience": 4}'),
        Reply('Here you go: {"range": [1800, 2200]}'),
        Reply('{"range": [0, 0]}'),
    )

    async def calls():
        quality = await QualityDimensionsTask(backend).score("Write an essay", [], "An essay.")
        ranged = await LengthRangeTask(backend).predict("Write about 2000 words on tea.")
        infeasible = await LengthRangeTask(backend).predict("Write a 50000-word novel.")
        return quality, ranged, infeasible

    quality, ranged, infeasible = run(calls())
    assert quality.score == pytest.approx(4.0) and quality.extra["dimensions"]["clarity"] == 3
    assert ranged.range == (1800, 2200) and ranged.reason is None
    assert infeasible.range is None and infeasible.reason == "infeasible"
    assert "12000" in server.chat_requests[1].body["messages"][-1]["content"]


def test_build_judge_backend_from_composed_presets(server, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    cfg = compose(["judge=openai", f"judge.base_url={server.base_url}", "judge.model=fake-judge"]).judge
    backend = build_judge_backend(cfg, cache_dir=tmp_path)
    assert isinstance(backend, CachedBackend) and backend.identity.startswith("openai:fake-judge@")
    assert run(PairwiseTask(backend).compare("p", [], "a", "b")).verdict == "tie"
    assert run(PairwiseTask(backend).compare("p", [], "a", "b")).cached  # second time from the cache
    assert len(server.chat_requests) == 1
    run(backend.check())  # the wrapper forwards check()

    monkeypatch.delenv("VLLM_API_KEY", raising=False)
    vllm = compose(["judge=vllm_server"]).judge
    assert vllm.api_key_required is False and vllm.model and vllm.concurrency == 16  # inherited from openai
    build_judge_backend(vllm)  # no key needed
    dashscope = compose(["judge=dashscope"]).judge
    assert dashscope.base_url.startswith("https://dashscope") and dashscope.api_key_env == "DASHSCOPE_API_KEY"
    with pytest.raises(JudgeError, match="unknown judge config keys.*concurency"):
        build_judge_backend({"backend": "openai", "api_key_env": KEY_ENV, "concurency": 3})
    with pytest.raises(JudgeError, match="unknown judge.backend"):
        build_judge_backend({"backend": "nope"})


# -- rate limiter ------------------------------------------------------------------------------

def test_token_bucket_debt_model_with_a_fake_clock() -> None:
    now = [0.0]
    bucket = TokenBucket(per_minute=600, burst_s=1.0, clock=lambda: now[0])  # 10/s, capacity 10
    assert bucket.capacity == 10
    assert bucket.try_take(10) == 0.0  # the full burst
    assert bucket.try_take(1) == pytest.approx(0.1)  # then one every 0.1 s
    now[0] = 0.1
    assert bucket.try_take(1) == 0.0
    now[0] = 1.1
    assert bucket.try_take(25) == 0.0  # bigger than a burst: allowed on a full bucket, leaves debt
    assert bucket.level == pytest.approx(-15)
    assert bucket.try_take(1) == pytest.approx(1.6)  # pays the debt back first
    bucket.refund(20)  # the real token count was smaller than the estimate
    assert bucket.level == pytest.approx(5)


def test_rate_limiter_paces_requests_per_minute() -> None:
    limiter = RateLimiter(concurrency=8, rpm=1200, burst_s=0.05)  # 20 per second, bursts of 1

    async def go():
        async def one():
            async with limiter.slot():
                pass
        start = time.monotonic()
        await asyncio.gather(*(one() for _ in range(11)))
        return time.monotonic() - start

    elapsed = run(go())
    assert 0.45 <= elapsed < 2.0  # 10 waits of 0.05 s after the first (generous: loaded CI machines)


def test_rate_limiter_tokens_per_minute_settles_with_real_counts() -> None:
    limiter = RateLimiter(tpm=60_000, burst_s=1.0)  # 1000 tokens per second

    async def go():
        async with limiter.slot(900) as slot:
            slot.settle(100)  # the call used far fewer tokens than estimated
        start = time.monotonic()
        async with limiter.slot(900):
            pass
        return time.monotonic() - start

    assert run(go()) < 0.05  # the refund made room at once
    assert -1 <= limiter.tokens.level < 300  # about 0 plus the refill since; not 800 in debt
