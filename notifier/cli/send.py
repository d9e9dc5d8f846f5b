"""`notifier send`: deliver everything due now, with a progress bar, then exit."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import typer

from notifier.cli import app
from notifier.cli.common import console, err_console, print_json, state, thousands

if TYPE_CHECKING:
    from notifier.delivery.sender import SendReport


@app.command("send")
def send(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="print one JSON object with the counts"),
) -> None:
    """Deliver every message that is due now (status notices, apologies, …), then exit.

    Exit code 0 when nothing failed permanently, 1 otherwise (also when a template that
    failed to render paused a mailing: fix it, and the next send goes on). Messages held by
    another live sender are left to it; a sender that stopped on this machine has its
    messages taken back at once, one on another machine after [mailing].heartbeat_timeout.
    Example: notifier send
    """
    import asyncio

    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

    from notifier.delivery.sender import send_due
    st = state(ctx)
    engine, config = st.engine(), st.config

    def on_notice(line: str) -> None:
        err_console.print(line, markup=False, highlight=False)

    if as_json or not sys.stdout.isatty():
        report = asyncio.run(send_due(engine, config, on_notice=on_notice))
    else:
        with Progress(
            TextColumn("[bold]sending"),
            BarColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[sent]} sent, {task.fields[failed]} failed, {task.fields[rate]}/s"),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        ) as progress:
            task = progress.add_task("send", total=None, sent=0, failed=0, rate=0)

            def on_progress(report: SendReport) -> None:
                progress.update(
                    task, total=max(report.total, report.done), completed=report.done, sent=report.sent,
                    failed=report.failed + report.bounced, rate=f"{report.rate:.0f}",
                )  # fmt: skip

            report = asyncio.run(send_due(engine, config, on_progress=on_progress, on_notice=on_notice))
    failed = report.failed + report.bounced
    if as_json:
        print_json(report.as_dict())
    else:
        console.print(
            f"Sent {thousands(report.sent)}, failed {thousands(report.failed)}, bounced {thousands(report.bounced)}, "
            f"to retry later {thousands(report.retried + report.deferred)}, cancelled {thousands(report.cancelled)} "
            f"in {report.as_dict()['seconds']:.1f} s."
        )
    if report.deferred and not failed:
        raise typer.Exit(1 if any(" paused: " in note for note in report.notes) else 0)
    raise typer.Exit(1 if failed else 0)
