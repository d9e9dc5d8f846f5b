"""`notifier subscribers …`: import, add, list, count, unsubscribe."""

from __future__ import annotations

import typer

from notifier.cli import app

subscribers_app = typer.Typer(
    help="Manage subscribers: import a CSV, add, list, count, unsubscribe.", no_args_is_help=True
)
app.add_typer(subscribers_app, name="subscribers")
