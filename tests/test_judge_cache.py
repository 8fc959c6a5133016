"""The persistent judgement cache: hits, misses on any change that matters, persistence, concurrency."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Sequence

import pytest

from longwriter.judges import CachedBackend, ChatResult, ChoiceResult, JudgeCache, PairwiseTask, Usage
from longwriter.judges.prompts import PAIRWISE_V1, Template, register

from conftest import ROOT


class CountingBackend:
    """A chat backend that answers "[[A]]" and counts how often it was really called."""

    provides_probs = False

    def __init__(self, identity: str = "stub:judge-1", fail: bool = False):
        self.identity = identity
        self.fail = fail
        self.calls = 0

    async def chat(self, messages: Sequence[dict], max_tokens: int) -> ChatResult:
        self.calls += 1
        await asyncio.sleep(0)
        if self.fail:
            return ChatResult(None, error="HTTP 500")
        return ChatResult("Verdict: [[A]]", prompt_tokens=10, completion_tokens=3)

    async def choose(self, messages: Sequence[dict], options: Sequence[str]) -> ChoiceResult:
        self.calls += 1
        return ChoiceResult({o: 1.0 / len(options) for o in options})

    def usage(self) -> Usage:
        return Usage(requests=self.calls)


def _compare(backend, first="reference text", second="policy text", template_id=None):
    task = PairwiseTask(backend, template_id) if template_id else PairwiseTask(backend)
    return asyncio.run(task.compare("Write a story.", ["Vivid"], first, second))


# A second pairwise template (same parser, other wording) to show that a template change misses.
PAIRWISE_ALT = register(Template(id="pairwise_test_alt", user=PAIRWISE_V1.user.replace("Compare", "Weigh"),
                                 api_ending=PAIRWISE_V1.api_ending))


def test_hit_on_identical_call_and_usage_counts(tmp_path: Path) -> None:
    inner = CountingBackend()
    backend = CachedBackend(inner, JudgeCache(tmp_path / "c.sqlite"))
    first = _compare(backend)
    second = _compare(backend)
    assert first.verdict == second.verdict == "first"
    assert (first.cached, second.cached) == (False, True)
    assert inner.calls == 1
    usage = backend.usage()
    assert (usage.cache_hits, usage.cache_misses, usage.requests) == (1, 1, 1)


@pytest.mark.parametrize("change", ["template", "model", "order", "criteria", "text"])
def test_miss_when_anything_that_matters_changes(tmp_path: Path, change: str) -> None:
    cache = JudgeCache(tmp_path / "c.sqlite")
    inner = CountingBackend()
    _compare(CachedBackend(inner, cache))
    other_inner = CountingBackend("stub:judge-2") if change == "model" else inner
    backend = CachedBackend(other_inner, cache)
    if change == "template":
        judgement = _compare(backend, template_id="pairwise_test_alt")
    elif change == "order":
        judgement = _compare(backend, first="policy text", second="reference text")
    elif change == "criteria":
        judgement = asyncio.run(PairwiseTask(backend).compare("Write a story.", ["Funny"], "reference text",
                                                              "policy text"))
    elif change == "text":
        judgement = _compare(backend, second="policy text, edited")
    else:
        judgement = _compare(backend)
    assert not judgement.cached
    assert inner.calls + (other_inner.calls if other_inner is not inner else 0) == 2


def test_failures_are_not_cached(tmp_path: Path) -> None:
    cache = JudgeCache(tmp_path / "c.sqlite")
    failing = CountingBackend(fail=True)
    assert _compare(CachedBackend(failing, cache)).verdict is None
    working = CountingBackend()
    assert _compare(CachedBackend(working, cache)).verdict == "first"  # asked again, not an old failure
    assert working.calls == 1 and len(cache) == 1


def test_choose_results_are_cached_too(tmp_path: Path) -> None:
    inner = CountingBackend()
    backend = CachedBackend(inner, JudgeCache(tmp_path / "c.sqlite"))
    messages = [{"role": "user", "content": "x"}]
    a = asyncio.run(backend.choose(messages, ["A", "B"]))
    b = asyncio.run(backend.choose(messages, ["A", "B"]))
    c = asyncio.run(backend.choose(messages, ["A", "B", "C"]))  # other options: other key
    assert (a.cached, b.cached, c.cached) == (False, True, False) and b.probs == a.probs
    assert inner.calls == 2


def test_persists_across_instances(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "c.sqlite"
    _compare(CachedBackend(CountingBackend(), JudgeCache(path)))
    fresh_inner = CountingBackend()
    judgement = _compare(CachedBackend(fresh_inner, JudgeCache(path)))
    assert judgement.cached and judgement.verdict == "first" and fresh_inner.calls == 0
    mode = JudgeCache(path)._connection().execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_concurrent_writers_from_threads(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    shared = JudgeCache(path)
    errors: list[BaseException] = []

    def writer(worker: int, cache: JudgeCache) -> None:
        try:
            for i in range(100):
                cache.put(f"w{worker}-{i}", {"text": f"{worker}:{i}"})
                assert cache.get(f"w{worker}-{i}") == {"text": f"{worker}:{i}"}
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    # half the threads share one connection, half have their own (like separate processes)
    threads = [threading.Thread(target=writer, args=(w, shared if w % 2 else JudgeCache(path))) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(JudgeCache(path)) == 800


def test_concurrent_asyncio_tasks_share_one_cache(tmp_path: Path) -> None:
    inner = CountingBackend()
    backend = CachedBackend(inner, JudgeCache(tmp_path / "c.sqlite"))
    task = PairwiseTask(backend)

    async def many():
        return await asyncio.gather(*(task.compare("p", [], f"a{i % 10}", "b") for i in range(40)))

    asyncio.run(many())  # concurrent first round: some duplicates may both miss
    again = asyncio.run(many())
    assert all(j.cached for j in again)
    assert len(backend.cache) == 10


_PROCESS_WRITER = """
import sys, time
from pathlib import Path
from longwriter.judges.cache import JudgeCache
path, name, barrier = sys.argv[1], sys.argv[2], Path(sys.argv[3])
cache = JudgeCache(path)
cache.get("warm-up")  # connection open, schema in place
(barrier / f"ready-{name}").touch()
while not (barrier / "go").exists():  # start writing together: imports take longer than the writes
    time.sleep(0.005)
for i in range(300):
    cache.put(f"{name}-{i}", {"text": str(i)})
    assert cache.get(f"{name}-{i}") == {"text": str(i)}
"""


def test_concurrent_writer_processes(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    procs = [subprocess.Popen([sys.executable, "-c", _PROCESS_WRITER, str(path), f"p{n}", str(barrier)], cwd=ROOT,
                              stderr=subprocess.PIPE, text=True) for n in range(3)]
    deadline = time.monotonic() + 60
    while len(list(barrier.glob("ready-*"))) < 3 and time.monotonic() < deadline:
        if any(p.poll() is not None for p in procs):
            break
        time.sleep(0.01)
    (barrier / "go").touch()
    for proc in procs:
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    assert len(JudgeCache(path)) == 900
