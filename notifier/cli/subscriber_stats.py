"""`notifier subscribers stats`: subscriptions gained and lost per week (``subscriptions.weekly_stats``)."""

from __future__ import annotations

import typer

from notifier.cli.common import bounded, console, print_json, state
from notifier.cli.subscribers import subscribers_app


@subscribers_app.command("stats")
def stats(
    ctx: typer.Context,
    weeks: int = typer.Option(8, "--weeks", help="how many weeks back, this one included (1 to 520)"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
) -> None:
    """Subscriptions gained (confirmed on the status page, or imported) and lost (unsubscribed) per week.

    Example: notifier subscribers stats --weeks 12
    """
    from notifier import subscriptions
    from notifier.db import read_session
    weeks = bounded(weeks, "--weeks", 1, 520)
    st = state(ctx)
    with read_session(st.engine()) as session:
        rows = subscriptions.weekly_stats(session, weeks=weeks)
    if as_json:
        print_json({"weeks": rows})
        return
    console.print(f"{'week':<10} {'from':<10} {'gained':>7} {'lost':>6}", markup=False)
    for row in rows:
        console.print(f"{row['week']:<10} {row['from']:<10} {row['gained']:>7} {row['lost']:>6}", markup=False)
