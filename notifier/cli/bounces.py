"""`notifier bounces process`: read a bounce message file or a Maildir once.

A thin wrapper over ``notifier.bounces.intake.process_path``; the listener and the Maildir
poller run inside ``notifier serve``.
"""

from __future__ import annotations

from pathlib import Path

import typer

from notifier.cli import app
from notifier.cli.common import console, print_json, state

bounces_app = typer.Typer(
    help="Bounces and complaints: read them from files or a Maildir.", no_args_is_help=True
)
app.add_typer(bounces_app, name="bounces")


@bounces_app.command("process")
def process(
    ctx: typer.Context,
    path: Path = typer.Argument(
        ..., metavar="FILE|MAILDIR", help="one message file, or a Maildir (new/ is read)"
    ),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
) -> None:
    """Record the bounces, complaints and auto-replies in a message file or a Maildir's new/.

    Messages read from a Maildir are moved to its cur/. Example: notifier bounces process /var/mail/bounces
    """
    from notifier.bounces.intake import process_path

    st = state(ctx)
    report = process_path(st.engine(), st.config, path)
    if as_json:
        print_json(report.as_dict())
        return
    data = report.as_dict()
    kinds = (
        ", ".join(f"{n} {kind.replace('_', ' ')}" for kind, n in sorted(data["events"].items()))
        or "no events"
    )
    console.print(
        f"{data['messages']} message(s): {kinds}; {data['status_changes']} subscriber(s) changed, "
        f"{data['unmatched']} event(s) matched nobody.",
        markup=False,
    )
