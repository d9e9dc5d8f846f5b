"""Console login attempts: limited per address and per user name, every failure logged.

A console token is 32 random bytes, so guessing one is hopeless; the limits make trying
visible and slow anyway, and stop one person's name from being hammered. Failed logins
(never successful ones) count against two moving windows:

* ``PER_ADDRESS`` from one client address (every name it tries), and
* ``PER_NAME`` for one user name (from any address): past it the name is locked until its
  oldest failure leaves the window, even for the right token (so a correct guess during a
  lock is worth nothing); a successful login clears the name's count.

Each failure is logged as one line (``console login failed for 'ivanova' from 10.0.0.7:
wrong name or token (3 of 5 for this name in 15 min)``) on the ``notifier.console`` logger,
and so is each refusal while locked. The counts are kept in memory (the ``limits``
package's MemoryStorage): one ``notifier serve`` process keeps its own, and a restart
forgets them. Behind a reverse proxy every client has the proxy's address: run uvicorn with
``--proxy-headers`` or rely on the per-name limit.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

from limits import RateLimitItem, parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

log = logging.getLogger("notifier.console")

PER_ADDRESS = parse("20 per 10 minutes")
PER_NAME = parse("5 per 15 minutes")


@dataclass(frozen=True)
class Locked:
    """Why a login is refused before its token is even looked at, and for how long."""

    message: str
    retry_after: int  # seconds


def _key(name: str) -> str:
    return " ".join(name.split()).casefold()[:100]


class LoginGuard:
    """The failed-login counters of one web app (``app.state.logins``)."""

    def __init__(self) -> None:
        self._limiter = MovingWindowRateLimiter(MemoryStorage())

    def _wait(self, item: RateLimitItem, *identifiers: str) -> int:
        reset = self._limiter.get_window_stats(item, *identifiers).reset_time
        return max(1, math.ceil(reset - time.time()))

    def locked(self, address: str, name: str) -> Locked | None:
        """A refusal when this address or this name has failed too often lately; None to go on."""
        if not self._limiter.test(PER_ADDRESS, "address", address):
            wait = self._wait(PER_ADDRESS, "address", address)
            log.warning("console login refused from %s: too many failed logins from this address", address)
            return Locked(f"Too many failed logins from your address. Try again in {_minutes(wait)}.", wait)
        if name.strip() and not self._limiter.test(PER_NAME, "name", _key(name)):
            wait = self._wait(PER_NAME, "name", _key(name))
            log.warning("console login refused for %r from %s: the name is locked", name, address)
            return Locked(
                f"Too many failed logins for this name: it is locked for {_minutes(wait)}. "
                "Ask a colleague to check `notifier users list` if this was not you.",
                wait,
            )
        return None

    def failed(self, address: str, name: str) -> None:
        """Count and log one failed login."""
        self._limiter.hit(PER_ADDRESS, "address", address)
        self._limiter.hit(PER_NAME, "name", _key(name))
        remaining = self._limiter.get_window_stats(PER_NAME, "name", _key(name)).remaining
        log.warning(
            "console login failed for %r from %s: wrong name or token (%d of %d for this name in %d min)",
            name, address, PER_NAME.amount - remaining, PER_NAME.amount, PER_NAME.get_expiry() // 60,
        )  # fmt: skip

    def succeeded(self, address: str, name: str) -> None:
        self._limiter.clear(PER_NAME, "name", _key(name))
        log.info("console login of %r from %s", name, address)


def _minutes(seconds: int) -> str:
    minutes = math.ceil(seconds / 60)
    return f"{minutes} minute{'s' if minutes != 1 else ''}"
