"""A judge's life outside the training loop: built from `judge=`, checked once, closed on its loop.

Async HTTP clients are bound to the event loop they first ran on, so each piece of judge work runs
in one `asyncio.run` that closes the backend's client before its loop ends (`run_with_judge`), and
an API judge that cannot serve (unreachable, key rejected) fails at `open_judge` with one message,
before any generation is paid for. Evaluation, data selection and reference writing use these.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any, Awaitable, Callable, TypeVar

from longwriter.judges.base import Backend, supports_probs

T = TypeVar("T")


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
    """The backend of a judge config (cached when `cache: true`); an API judge is checked at once."""
    from longwriter.judges import build_judge_backend

    backend = build_judge_backend(judge_cfg, cache_dir=cache_dir)
    if not supports_probs(backend) and hasattr(backend, "check"):
        run_with_judge(backend, backend.check)
    return backend
