"""A judge's life: built from `judge=`, checked once before any work is paid for, closed on its loop.

Async HTTP clients are bound to the event loop they first ran on, so a judge is closed on the loop it
served on. Two shapes of use, one helper each:
- one-off work (evaluation, the arena, data selection, reference writing, verl's launch check): each
  piece runs in one `asyncio.run` that closes the client before its loop ends (`run_with_judge`);
  `open_judge` builds and checks a judge this way.
- a training run (TRL): the judge serves every step on the run's long-lived `BackgroundLoop`;
  `judge_on_loop` checks it there before the first step and closes it there at the end.
verl's reward workers `build_judge` their own and keep it for the worker's life.

An API judge that cannot serve (unreachable, key rejected) fails at the check with one message; a
local judge (one that gives probabilities) loads on first use and has nothing to check.
"""

from __future__ import annotations

import asyncio
import logging
import os
from contextlib import contextmanager
from typing import Any, Awaitable, Callable, Iterator, TypeVar

from longwriter.judges.base import Backend, supports_probs

logger = logging.getLogger(__name__)

T = TypeVar("T")


def build_judge(judge_cfg: Any, cache_dir: str | os.PathLike | None) -> Backend:
    """The backend of a `judge=` config (cached under `cache_dir` when `cache: true`), not yet checked."""
    from longwriter.judges import build_judge_backend

    return build_judge_backend(judge_cfg, cache_dir=cache_dir)


async def check_judge(backend: Any) -> None:
    """Ask an API judge once; raises JudgeError naming the endpoint and the fix when it cannot answer."""
    if backend is None or supports_probs(backend) or not hasattr(backend, "check"):
        return
    await backend.check()
    logger.info("judge endpoint answers: %r", backend)


async def close_judge(backend: Any) -> None:
    """Close the backend's client if it has one (an in-process judge has none)."""
    if backend is not None and hasattr(backend, "aclose"):
        await backend.aclose()


def run_with_judge(backend: Any, work: Callable[[], Awaitable[T]]) -> T:
    """Run `work()` in a fresh event loop and close the backend's client before that loop ends."""

    async def main() -> T:
        try:
            return await work()
        finally:
            await close_judge(backend)

    return asyncio.run(main())


def open_judge(judge_cfg: Any, cache_dir: str | os.PathLike | None) -> Backend:
    """A judge built and checked at once, its client closed again (the next `run_with_judge` reopens it)."""
    backend = build_judge(judge_cfg, cache_dir)
    run_with_judge(backend, lambda: check_judge(backend))
    return backend


@contextmanager
def judge_on_loop(backend: Any, loop: Any) -> Iterator[Any]:
    """Check `backend` on `loop` (a BackgroundLoop it will serve on) and close it there on exit; a
    recipe without a judge passes None through."""
    try:
        loop.run(check_judge(backend))
        yield backend
    finally:
        loop.run(close_judge(backend))
