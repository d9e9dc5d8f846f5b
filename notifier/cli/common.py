"""What every command group shares: the loaded state, JSON output, and argument parsing.

Owns turning CLI options into library calls' arguments (times, durations, bounded numbers:
each mistake one ``UsageError`` line naming the option) and printing results: whatever is
printed goes through ``notifier.characters.for_terminal``, so no stored name or title can
send a terminal control sequence or reverse a line. The work itself is done by the domain
modules. Nothing heavy is imported here at import time (pydantic, SQLAlchemy, Babel, rich):
typer builds ``notifier --help`` from the commands' signatures alone, so each command imports
what it needs when it runs.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from notifier.errors import UsageError

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from notifier.config import Config

# Earliest and latest times an option may name: an incident that started before 1970 is a
# typo, and far-off years overflow when moved to UTC or to a region's time zone.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)
MAX_ID = 2**31 - 1  # the largest id a row can have on PostgreSQL (SQLite's are 64-bit)
# Control characters JSON leaves as they are (it escapes only C0): escaped for the terminal.
_JSON_UNSAFE = str.maketrans({code: f"\\u{code:04x}" for code in
                              [*range(0x7f, 0xa0), 0x2028, 0x2029, 0x61c, 0x200e, 0x200f,
                               *range(0x202a, 0x202f), *range(0x2066, 0x206a)]})  # fmt: skip


class TerminalConsole:
    """A rich Console, made on first use, whose printed strings cannot carry control or
    direction characters (``characters.for_terminal``)."""

    def __init__(self, **options: Any) -> None:
        self._options = options
        self._console: Any = None

    def _get(self) -> Any:
        if self._console is None:
            from rich.console import Console

            self._console = Console(**self._options)
        return self._console

    def print(self, *objects: Any, **kwargs: Any) -> None:
        from notifier.characters import for_terminal

        if kwargs == {"markup": False} and all(isinstance(o, str) for o in objects):
            # Plain text: written as it is, without importing rich (~0.05-0.09 s of every
            # command's start-up) and without rich's ":name:" emoji codes, which would turn a
            # subscriber called "Ромашка :fire:" into a picture on the operator's screen.
            stream = sys.stderr if self._options.get("stderr") else sys.stdout
            stream.write(" ".join(for_terminal(o) for o in objects) + "\n")
            return
        self._get().print(*(for_terminal(o) if isinstance(o, str) else o for o in objects), **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._get(), name)


console = TerminalConsole(highlight=False, soft_wrap=True)
err_console = TerminalConsole(stderr=True, highlight=False, soft_wrap=True)


@dataclass
class AppState:
    """Loaded lazily: `notifier sink` needs no config, `notifier init` no schema."""

    config_path: Path | None = None
    _config: Config | None = field(default=None, repr=False)
    _engine: Engine | None = field(default=None, repr=False)

    @property
    def config(self) -> Config:
        if self._config is None:
            from notifier.config import load_config

            self._config = load_config(self.config_path)
        return self._config

    @property
    def zone(self) -> tzinfo:
        """The operator's time zone: ``[notifier].operator_timezone``, else this machine's."""
        from notifier.wording import operator_zone

        return operator_zone(self.config.notifier.operator_timezone)

    def engine(self, *, check: bool = True) -> Engine:
        if self._engine is None:
            from notifier.db import check_schema, make_engine

            self._engine = make_engine(self.config.database_url)
            if check:
                check_schema(self._engine)
        return self._engine


def state(ctx: typer.Context) -> AppState:
    root = ctx.find_root()
    if not isinstance(root.obj, AppState):
        root.obj = AppState()
    return root.obj


def print_json(data: Any) -> None:
    """One JSON object on stdout; C1 and direction characters escaped (``\\u202e``), as JSON allows."""
    text = json.dumps(data, ensure_ascii=False, default=_json_default)
    sys.stdout.write(text.translate(_JSON_UNSAFE) + "\n")


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    raise TypeError(f"cannot serialise {type(value).__name__}")


TIME_HELP = (
    "a time without an offset (+05:00) is read in the operator's zone ([notifier].operator_timezone, "
    "else this machine's)"
)


def local_time(at: datetime | None, zone: tzinfo) -> str:
    """``2026-12-02 05:30 +05:00``: a moment in the operator's zone, with its offset ('—' for None)."""
    if at is None:
        return "—"
    local = at.astimezone(zone)
    offset = local.strftime("%z")
    return f"{local:%Y-%m-%d %H:%M} {offset[:3]}:{offset[3:]}" if offset else f"{local:%Y-%m-%d %H:%M}"


def parse_time(value: str | None, option: str, zone: tzinfo | None = None) -> datetime | None:
    """An ISO 8601 time from the command line; without an offset it is read in ``zone`` (the
    operator's: ``AppState.zone``; None: this machine's)."""
    if value is None:
        return None
    from notifier.wording import operator_zone

    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=zone or operator_zone())
        parsed = parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        raise UsageError(
            f"{option}: {value!r} is not an ISO 8601 time such as 2026-11-23T10:05+05:00"
        ) from None
    if not EARLIEST <= parsed < LATEST:
        raise UsageError(f"{option}: {value!r} is not between {EARLIEST.year} and {LATEST.year}")
    return parsed


def parse_interval(value: str, option: str, *, at_most: timedelta | None = None) -> timedelta:
    """A duration from the command line (``2h``, ``30m``, ``1d``), no longer than ``at_most``."""
    from notifier.config import parse_duration

    try:
        interval = parse_duration(value)
    except ValueError as exc:
        raise UsageError(f"{option}: {exc}") from None
    if at_most is not None and interval > at_most:
        raise UsageError(f"{option}: {value!r} is longer than {_as_duration(at_most)}")
    return interval


def _as_duration(interval: timedelta) -> str:
    seconds = int(interval.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def bounded(value: int, option: str, low: int, high: int) -> int:
    """``value`` if ``low <= value <= high``; else one UsageError line naming the option."""
    if not low <= value <= high:
        raise UsageError(f"{option} must be between {thousands(low)} and {thousands(high)}, not {value}")
    return value


def thousands(n: int) -> str:
    """3412 -> '3 412' (a narrow no-break space would not survive every terminal)."""
    return f"{n:,}".replace(",", " ")
