"""Persistent judgement cache: re-runs, sweeps and evaluations never pay twice for one call.

The key is the sha256 of (backend identity, call kind, the rendered messages, the call's
arguments). The rendered messages contain the template text and the order of the two responses,
so a changed template, judge model or order is a different key: a miss, never a stale answer.

Only successful calls are stored (a failed API call stays retryable on the next run). An answer
without a parsable marker *is* stored: with temperature 0 asking again gives the same text.

sqlite in WAL mode: readers never block the writer, and several processes (sweep trials, reward
workers) can share one file; `busy_timeout` absorbs the short write locks. One connection per
process (reopened after a fork), guarded by a lock so threads and asyncio tasks can share it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

from longwriter.judges.base import Backend, ChatResult, ChoiceResult, Message, Usage, choose_many, supports_probs

logger = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS judgements (
    key TEXT PRIMARY KEY,
    identity TEXT NOT NULL,
    kind TEXT NOT NULL,
    value TEXT NOT NULL,
    created REAL NOT NULL
)
"""


def cache_key(identity: str, kind: str, messages: Sequence[Message], args: Mapping[str, Any]) -> str:
    """sha256 over a canonical JSON of everything that determines the judge's answer."""
    payload = json.dumps(
        {"identity": identity, "kind": kind, "messages": [dict(m) for m in messages], "args": dict(args)},
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class JudgeCache:
    """A key -> JSON value store in one sqlite file, with hit/miss counters for this process."""

    def __init__(self, path: str | os.PathLike, busy_timeout_s: float = 30.0):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._busy_timeout_s = busy_timeout_s
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._pid: int | None = None
        self.hits = 0
        self.misses = 0

    def __repr__(self) -> str:
        return f"JudgeCache({str(self.path)!r})"

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None or self._pid != os.getpid():
            conn = sqlite3.connect(
                self.path, timeout=self._busy_timeout_s, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute(_SCHEMA)
            self._conn, self._pid = conn, os.getpid()
        return self._conn

    def get(self, key: str) -> dict | None:
        with self._lock:
            row = self._connection().execute("SELECT value FROM judgements WHERE key = ?", (key,)).fetchone()
            if row is None:
                self.misses += 1
                return None
            self.hits += 1
        return json.loads(row[0])

    def put(self, key: str, value: Mapping[str, Any], *, identity: str = "", kind: str = "") -> None:
        data = json.dumps(dict(value), ensure_ascii=False)
        with self._lock:
            self._connection().execute(
                "INSERT OR REPLACE INTO judgements (key, identity, kind, value, created) VALUES (?, ?, ?, ?, ?)",
                (key, identity, kind, data, time.time()),
            )

    def __len__(self) -> int:
        with self._lock:
            return self._connection().execute("SELECT COUNT(*) FROM judgements").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None


class CachedBackend:
    """A Backend that answers from `cache` when it can and stores the inner backend's successes.

    Hits cost nothing, so a hit's ChatResult carries zero tokens and `cached=True`; the inner
    backend's Usage (tokens, cost, retries) therefore counts only what was really spent.
    """

    def __init__(self, backend: Backend, cache: JudgeCache):
        self.inner = backend
        self.cache = cache
        self.identity = backend.identity
        self.provides_probs = supports_probs(backend)
        self._mutex = threading.Lock()
        self._hits = 0
        self._misses = 0

    def __repr__(self) -> str:
        return f"CachedBackend({self.inner!r}, {self.cache!r})"

    def __getattr__(self, name: str) -> Any:
        # check(), aclose(), settings ... of the inner backend stay reachable through the wrapper.
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    def _count(self, hit: bool) -> None:
        with self._mutex:
            if hit:
                self._hits += 1
            else:
                self._misses += 1

    def _effective_max_tokens(self, max_tokens: int) -> int:
        cap = getattr(self.inner, "max_tokens_cap", None)
        return min(max_tokens, cap) if cap else max_tokens

    async def chat(self, messages: Sequence[Message], max_tokens: int) -> ChatResult:
        return await self._chat(messages, max_tokens, {"max_tokens": self._effective_max_tokens(max_tokens)})

    async def chat_retry(self, messages: Sequence[Message], max_tokens: int, attempt: int) -> ChatResult:
        """Ask again after an unusable answer: attempt n >= 1 has its own key, so the stored
        (unparsable) first answer is not simply read back, and a rerun replays every attempt."""
        return await self._chat(messages, max_tokens,
                                {"max_tokens": self._effective_max_tokens(max_tokens), "attempt": attempt})

    async def _chat(self, messages: Sequence[Message], max_tokens: int, args: dict) -> ChatResult:
        key = cache_key(self.identity, "chat", messages, args)
        stored = await asyncio.to_thread(self.cache.get, key)
        self._count(stored is not None)
        if stored is not None:
            return ChatResult(text=stored["text"], cached=True)
        result = await self.inner.chat(messages, max_tokens)
        if result.text is not None:
            value = {"text": result.text, "prompt_tokens": result.prompt_tokens,
                     "completion_tokens": result.completion_tokens}
            await asyncio.to_thread(self.cache.put, key, value, identity=self.identity, kind="chat")
        return result

    async def choose(self, messages: Sequence[Message], options: Sequence[str]) -> ChoiceResult:
        key = cache_key(self.identity, "choose", messages, {"options": list(options)})
        stored = await asyncio.to_thread(self.cache.get, key)
        self._count(stored is not None)
        if stored is not None:
            return ChoiceResult(probs=stored["probs"], cached=True)
        result = await self.inner.choose(messages, options)
        if result.probs is not None:
            await asyncio.to_thread(self.cache.put, key, {"probs": result.probs}, identity=self.identity,
                                    kind="choose")
        return result

    async def choose_many(self, requests: Sequence[Sequence[Message]], options: Sequence[str]) -> list[ChoiceResult]:
        """Several choose() calls: hits from the cache, the misses in one `inner.choose_many` when
        the inner backend has it (the local judge then reads their shared prefix once)."""
        keys = [cache_key(self.identity, "choose", messages, {"options": list(options)}) for messages in requests]
        stored = [await asyncio.to_thread(self.cache.get, key) for key in keys]
        results: list[ChoiceResult | None] = []
        for value in stored:
            self._count(value is not None)
            results.append(None if value is None else ChoiceResult(probs=value["probs"], cached=True))
        missing = [k for k, r in enumerate(results) if r is None]
        if missing:
            fresh = await choose_many(self.inner, [requests[k] for k in missing], options)
            for k, result in zip(missing, fresh):
                results[k] = result
                if result.probs is not None:
                    await asyncio.to_thread(self.cache.put, keys[k], {"probs": result.probs},
                                            identity=self.identity, kind="choose")
        return [r for r in results if r is not None]

    def usage(self) -> Usage:
        usage = Usage()
        usage.add(self.inner.usage())
        with self._mutex:
            usage.cache_hits += self._hits
            usage.cache_misses += self._misses
        return usage

