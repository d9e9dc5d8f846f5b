"""The `notifier` command line: a typer app, one module per command group.

Owns parsing options and printing results; every command is a thin wrapper over a
domain function. A NotifierError becomes one line on stderr and its exit code; anything
else is a bug and keeps its traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
import typer
from typer.core import TyperGroup

from notifier.cli.common import AppState, err_console
from notifier.errors import NotifierError


class NotifierGroup(TyperGroup):
    """Turns a NotifierError raised by any command into one line and an exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except NotifierError as exc:
            err_console.print(f"error: {exc}", markup=False)
            raise SystemExit(exc.exit_code) from None


app = typer.Typer(
    cls=NotifierGroup,
    name="notifier",
    help="Outage notification: tell exactly the affected, keep the hotline informed, apologise with reasons.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
)


@app.callback()
def _root(
    ctx: typer.Context,
    config: Path | None = typer.Option(
        None, "--config", "-c", envvar="NOTIFIER_CONFIG", help="config file (default ./config.toml)"
    ),
) -> None:
    ctx.obj = AppState(config_path=config)


def _register() -> None:
    from notifier.cli import (  # noqa: F401
        bounces,
        demo,
        dkim,
        hotline,
        incidents,
        maintenance,
        outbox,
        send,
        serve,
        setup,
        sink,
        sms,
        subscriber_stats,
        subscribers,
        suppression,
        templates,
        users,
    )


_register()


def main() -> None:
    """Console-script entry point."""
    app(prog_name="notifier")
    sys.exit(0)
