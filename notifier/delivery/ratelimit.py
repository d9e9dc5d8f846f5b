"""A token bucket that spaces sends to at most ``rate`` per second within one process.

Owns pacing only: it does not know what is being sent. Implemented as a virtual
schedule (GCRA): each grant reserves the next free slot, so concurrent tasks are spaced
without a lock, and a bucket of ``burst`` tokens lets that many go at once after a pause.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

__all__ = ["RateLimiter"]


class RateLimiter:
    """``await limiter.acquire()`` before each send. ``rate`` <= 0 means unlimited."""

    def __init__(
        self,
        rate: float,
        *,
        burst: int = 1,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        self.rate = rate
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self.burst = max(1, burst)
        self.granted = 0
        self.waited = 0.0  # total seconds callers were held back
        self._clock = clock
        self._sleep = sleep
        self._next = float("-inf")  # the earliest time of the next slot, with no backlog

    async def acquire(self) -> None:
        self.granted += 1
        if self.interval == 0.0:
            return
        now = self._clock()
        # Unused capacity accumulates up to `burst` slots, never more.
        slot = max(self._next, now - (self.burst - 1) * self.interval)
        self._next = slot + self.interval
        delay = slot - now
        if delay > 0:
            self.waited += delay
            await self._sleep(delay)
