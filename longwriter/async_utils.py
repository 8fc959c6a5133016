"""Run coroutines from synchronous trainer code on one long-lived event loop.

Async judge clients (httpx inside the openai client) are bound to the loop they were first used
on, so every reward step must reuse the same loop instead of calling `asyncio.run` each time.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from typing import Any, Awaitable


class BackgroundLoop:
    """An event loop running in a daemon thread; `run(coro)` blocks until the coroutine is done."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="longwriter-async", daemon=True)
        self._thread.start()

    def run(self, coro: Awaitable[Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def submit(self, coro: Awaitable[Any]) -> concurrent.futures.Future:
        """Start the coroutine now and return at once; `.result()` on the future waits for it."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    def close(self) -> None:
        if self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)
        if not self._loop.is_running():
            self._loop.close()
