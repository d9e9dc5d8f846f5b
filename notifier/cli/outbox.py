"""`notifier outbox` and `notifier report`: what is queued, sent and failed, per incident (and the
SMS among them by delivery state: accepted by the gateway, delivered, failed, expired)."""

from __future__ import annotations

import typer

from notifier import incidents, outbox, reports
from notifier.cli import app
from notifier.cli.common import console, print_json, state, thousands
from notifier.db import read_session
from notifier.models import MESSAGE_STATES
from notifier.outbox import pauses
from notifier.outbox.sms import SMS_STATES, sms_counts

JSON = typer.Option(False, "--json", help="print one JSON object")


def _table(counts: dict[str, dict[str, int]], vocabulary: tuple[str, ...] = MESSAGE_STATES) -> list[str]:
    states = [s for s in vocabulary if any(s in row for row in counts.values())]
    lines = [f"{'kind':<12}" + "".join(f"{s:>11}" for s in states)]
    for kind in sorted(counts):
        lines.append(f"{kind:<12}" + "".join(f"{thousands(counts[kind].get(s, 0)):>11}" for s in states))
    return lines


@app.command("outbox")
def outbox_(
    ctx: typer.Context,
    incident_id: str | None = typer.Argument(None, metavar="[ID]", help="only this incident's messages"),
    as_json: bool = JSON,
) -> None:
    """Messages by kind and state, for one incident or the whole outbox.

    Example: notifier outbox INC-1 --json
    """
    st = state(ctx)
    engine = st.engine()
    with read_session(engine) as session:
        key = incidents.get(session, incident_id).id if incident_id else None
        counts = outbox.counts(session, key)
        texts = sms_counts(session, key)
    paused = pauses.current(engine)
    if as_json:
        print_json({"incident": f"INC-{key}" if key else None, "messages": counts, "sms": texts,
                    "paused": [{"kind": p.kind, "channel": p.channel, "locale": p.locale, "since": p.since,
                                "problem": p.problem} for p in paused]})  # fmt: skip
        return
    if not counts:
        console.print("The outbox is empty.")
    for line in _table(counts) if counts else []:
        console.print(line, markup=False)
    if texts:
        console.print("SMS of them, by delivery:", markup=False)
        for line in _table(texts, SMS_STATES):
            console.print("  " + line, markup=False)
    for row in paused:
        console.print(f"paused: {pauses.describe(row)} (fix the template; sending resumes by itself)", markup=False)


@app.command("report")
def report(
    ctx: typer.Context,
    incident_id: str = typer.Argument(..., metavar="ID", help="incident id"),
    as_json: bool = JSON,
) -> None:
    """An incident's report: timeline, audience size, messages by kind and state.

    Example: notifier report INC-1
    """
    st = state(ctx)
    with read_session(st.engine()) as session:
        data = reports.incident_report(session, incident_id)
    if as_json:
        print_json(data)
        return
    console.print(f"{data['id']} «{data['title']}» — {data['status']}, {data['severity']}", markup=False)
    if data["duration_seconds"] is not None:
        minutes = int(data["duration_seconds"] // 60)
        console.print(f"Duration: {minutes // 60} h {minutes % 60} min", markup=False)
    console.print(
        f"Audience: {thousands(data['audience'])} subscribers in regions {', '.join(data['regions'])}"
    )
    if data["cause"]:
        console.print(f"Cause: {data['cause']}", markup=False)
    if data["measures"]:
        console.print(f"Measures: {data['measures']}", markup=False)
    console.print(f"Apology: {data['apology']}")
    console.print("Messages:")
    for line in _table(data["messages"]) if data["messages"] else ["  none"]:
        console.print("  " + line, markup=False)
    if data["sms"]:
        console.print("  SMS of them, by delivery:", markup=False)
        for line in _table(data["sms"], SMS_STATES):
            console.print("    " + line, markup=False)
    for kind, n in sorted(data.get("bounces", {}).items()):
        console.print(
            f"  {kind}: {n['hard_bounces']} hard and {n['soft_bounces']} soft bounces, "
            f"{n['complaints']} complaints, {n['auto_replies']} auto-replies"
        )
    cb = data["callbacks"]
    console.print(
        f"Hotline: {data['calls']} calls; callbacks promised {cb['promised']}, kept {cb['kept']}, "
        f"late {cb['late']}, open {cb['open']} ({cb['open_overdue']} overdue), escalations {cb['escalations']}"
    )
    console.print("Timeline (UTC):")
    for entry in data["timeline"]:
        who = f" ({entry['by']})" if entry["by"] else ""
        console.print(
            f"  {entry['at']:%Y-%m-%d %H:%M}  {entry['kind']:<9}{who} {entry['message']}", markup=False
        )
