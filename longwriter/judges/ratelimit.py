"""Client-side limits for API judges: bounded concurrency plus requests- and tokens-per-minute.

Providers enforce their limits in short windows (OpenAI documents that 600 rpm may be enforced
as 10 requests per second), so the buckets hold about one second's worth by default instead of a
whole minute: a burst of a minute's quota at start-up would earn 429s, not throughput.

asyncio primitives bind to the event loop that first waits on them. A judge backend outlives
loops (a startup `check()` under `asyncio.run`, then TRL's daemon loop), so the loop-bound parts
live in a `LoopLocal`; the bucket levels themselves are plain numbers shared by all loops.
"""

from __future__ import annotations

import asyncio
import threading
import time
import weakref
from contextlib import asynccontextmanager
from typing import AsyncIterator, Callable, Generic, TypeVar

T = TypeVar("T")


class LoopLocal(Generic[T]):
    """One lazily built object per running event loop (locks, semaphores, HTTP clients)."""

    def __init__(self, factory: Callable[[], T]):
        self._factory = factory
        self._items: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, T]" = weakref.WeakKeyDictionary()
        self._mutex = threading.Lock()

    def get(self) -> T:
        loop = asyncio.get_running_loop()
        with self._mutex:
            item = self._items.get(loop)
            if item is None:
                item = self._items[loop] = self._factory()
            return item

    def pop_current(self) -> T | None:
        """Forget (and return) the current loop's object, e.g. to close it."""
        loop = asyncio.get_running_loop()
        with self._mutex:
            return self._items.pop(loop, None)


class TokenBucket:
    """Refills at `per_minute / 60` units per second up to `capacity`.

    A take larger than the capacity waits for a full bucket and leaves it in debt, so requests
    bigger than one burst still go through and the long-run rate is still respected.
    """

    def __init__(self, per_minute: float, burst_s: float = 1.0, clock: Callable[[], float] = time.monotonic):
        if per_minute <= 0:
            raise ValueError(f"rate must be positive, got {per_minute}")
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, self.rate * burst_s)
        self._clock = clock
        self._level = self.capacity
        self._stamp = clock()
        self._mutex = threading.Lock()
        self._fifo = LoopLocal(asyncio.Lock)  # waiters are served in arrival order

    def _refill(self) -> None:
        now = self._clock()
        self._level = min(self.capacity, self._level + (now - self._stamp) * self.rate)
        self._stamp = now

    @property
    def level(self) -> float:
        with self._mutex:
            self._refill()
            return self._level

    def try_take(self, amount: float) -> float:
        """Take `amount` now and return 0.0, or take nothing and return the seconds to wait."""
        with self._mutex:
            self._refill()
            need = min(amount, self.capacity)
            if self._level >= need:
                self._level -= amount
                return 0.0
            return (need - self._level) / self.rate

    async def acquire(self, amount: float = 1.0) -> float:
        """Wait until `amount` can be taken; returns the seconds waited."""
        waited = 0.0
        async with self._fifo.get():
            while (delay := self.try_take(amount)) > 0:
                await asyncio.sleep(delay)
                waited += delay
        return waited

    def refund(self, amount: float) -> None:
        """Give back `amount` (negative: take more), e.g. when the real token count is known."""
        with self._mutex:
            self._refill()
            self._level = min(self.capacity, self._level + amount)


class Slot:
    """A granted request; `settle(actual_tokens)` corrects the token estimate it was granted with."""

    def __init__(self, tokens: TokenBucket | None, estimate: float):
        self._tokens = tokens
        self._estimate = estimate

    def settle(self, actual_tokens: float) -> None:
        if self._tokens is not None and actual_tokens > 0:
            self._tokens.refund(self._estimate - actual_tokens)
            self._estimate = actual_tokens


class RateLimiter:
    """Concurrency bound (semaphore) + optional rpm and tpm buckets. None disables a limit."""

    def __init__(
        self,
        concurrency: int | None = None,
        rpm: float | None = None,
        tpm: float | None = None,
        burst_s: float = 1.0,
    ):
        if concurrency is not None and concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}")
        self.concurrency = concurrency
        self.requests = TokenBucket(rpm, burst_s) if rpm else None
        self.tokens = TokenBucket(tpm, burst_s) if tpm else None
        self._semaphores = LoopLocal(lambda: asyncio.Semaphore(concurrency)) if concurrency else None
        self._mutex = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0

    @asynccontextmanager
    async def slot(self, estimated_tokens: float = 0.0) -> AsyncIterator[Slot]:
        semaphore = self._semaphores.get() if self._semaphores else None
        if semaphore is not None:
            await semaphore.acquire()
        try:
            if self.requests is not None:
                await self.requests.acquire(1)
            if self.tokens is not None and estimated_tokens > 0:
                await self.tokens.acquire(estimated_tokens)
            with self._mutex:
                self.in_flight += 1
                self.max_in_flight = max(self.max_in_flight, self.in_flight)
            try:
                yield Slot(self.tokens, estimated_tokens)
            finally:
                with self._mutex:
                    self.in_flight -= 1
        finally:
            if semaphore is not None:
                semaphore.release()
