"""`notifier outbox` and `notifier report`: what is queued, sent and failed, per incident (and the
SMS among them by delivery state: accepted by the gateway, delivered, failed, expired)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import typer

from notifier.cli import app
from notifier.cli.common import console, local_time, print_json, state, thousands

JSON = typer.Option(False, "--json", help="print one JSON object")


def _table(counts: dict[str, dict[str, int]], vocabulary: tuple[str, ...] | None = None) -> list[str]:
    from notifier.models import MESSAGE_STATES

    vocabulary = vocabulary or MESSAGE_STATES
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
    from notifier import incidents, outbox
    from notifier.db import read_session
    from notifier.outbox import pauses
    from notifier.outbox.sms import SMS_STATES, sms_counts
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
    incident_id: str = typer.Argument(..., metavar="ID", help="incident id (INC-n) or planned maintenance (MNT-n)"),
    as_json: bool = JSON,
) -> None:
    """An incident's report: timeline, audience size, messages by kind and state. A planned
    maintenance's (MNT-n) is its announcement, reminders and notices by kind and state.

    Example: notifier report INC-1
    """
    if incident_id.strip().upper().startswith("MNT"):
        from notifier.cli.maintenance import show

        show(ctx, incident_id, as_json)
        return
    from notifier import reports
    from notifier.db import read_session
    from notifier.outbox.sms import SMS_STATES
    from notifier.wording import format_duration
    st = state(ctx)
    with read_session(st.engine()) as session:
        data = reports.incident_report(session, incident_id, st.config)
    if as_json:
        print_json(data)
        return
    zone = st.zone
    console.print(f"{data['id']} «{data['title']}» — {data['status']}, {data['severity']}", markup=False)
    if data["duration_seconds"] is not None:
        console.print(f"Duration: {format_duration(timedelta(seconds=data['duration_seconds']), 'en')}", markup=False)
    without = data["audience_without_email"]
    console.print(
        f"Audience: {thousands(data['audience'])} subscribers in regions {', '.join(data['regions'])}"
        + (f" ({thousands(without)} without e-mail: no letter, SMS if any)" if without else "")
    )
    if data["cause"]:
        console.print(f"Cause: {data['cause']}", markup=False)
    if data["measures"]:
        console.print(f"Measures: {data['measures']}", markup=False)
    console.print(f"Apology: {_apology_line(data)}", markup=False)
    for gap in data["apology_held_languages"]:
        console.print(f"  held for {gap['readers']} {gap['locale']} readers: add {' '.join(gap['options'])}",
                      markup=False)  # fmt: skip
    console.print("Messages (one per letter or SMS; the audience counts people):")
    for line in _table(data["messages"]) if data["messages"] else ["  none"]:
        console.print("  " + line, markup=False)
    for kind, window in sorted(data["deliveries"].items()):
        console.print(f"  {kind} delivered from {local_time(window['first_sent_at'], zone)} "
                      f"to {local_time(window['last_sent_at'], zone)}", markup=False)  # fmt: skip
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
    console.print("Timeline:")
    for entry in data["timeline"]:
        who = f" ({entry['by']})" if entry["by"] else ""
        console.print(
            f"  {local_time(entry['at'], zone)}  {entry['kind']:<9}{who} {entry['message']}", markup=False
        )


def _apology_line(data: dict[str, Any]) -> str:
    """``sent (312 of 312)``, ``queued: 20 of 312 sent so far``, ``held`` …: where the apology is now."""
    states = data["messages"].get("apology", {})
    if data["apology"] != "queued" or not states:
        return str(data["apology"])
    wanted = sum(n for state, n in states.items() if state != "cancelled")
    sent, failed = states.get("sent", 0), states.get("failed", 0)
    if sent + failed >= wanted:
        return f"sent ({thousands(sent)} of {thousands(wanted)}" + (f", {thousands(failed)} failed)" if failed else ")")
    return f"queued: {thousands(sent)} of {thousands(wanted)} sent so far"
