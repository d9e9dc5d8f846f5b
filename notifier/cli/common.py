"""What every command group shares: the loaded state, JSON output, and argument parsing.

Owns turning CLI options into library calls' arguments (times, durations) and printing
results; the work itself is done by the domain modules.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from sqlalchemy.engine import Engine

from notifier.config import Config, load_config, parse_duration
from notifier.db import check_schema, make_engine
from notifier.errors import UsageError

console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


@dataclass
class AppState:
    """Loaded lazily: `notifier sink` needs no config, `notifier init` no schema."""

    config_path: Path | None = None
    _config: Config | None = field(default=None, repr=False)
    _engine: Engine | None = field(default=None, repr=False)

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = load_config(self.config_path)
        return self._config

    def engine(self, *, check: bool = True) -> Engine:
        if self._engine is None:
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
    sys.stdout.write(json.dumps(data, ensure_ascii=False, default=_json_default) + "\n")


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    raise TypeError(f"cannot serialise {type(value).__name__}")


def parse_time(value: str | None, option: str) -> datetime | None:
    """An ISO 8601 time from the command line; without a zone it is UTC."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"{option}: {value!r} is not an ISO 8601 time such as 2026-11-23T10:05+05:00"
        ) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def parse_interval(value: str, option: str) -> timedelta:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise UsageError(f"{option}: {exc}") from None


def thousands(n: int) -> str:
    """3412 -> '3 412' (a narrow no-break space would not survive every terminal)."""
    return f"{n:,}".replace(",", " ")
