"""`notifier hotline …` (script, lookup, log) and `notifier callbacks` (list, done): the phone desk.

Thin wrappers over ``notifier.hotline``: parse options, call the library, print the result
(or one JSON object with ``--json``). Times are printed in the operator's zone with their offset
(``[notifier].operator_timezone``, else this machine's), and read in it when given without one.
"""

from __future__ import annotations

import getpass
import os
import sys
from datetime import datetime, timedelta, tzinfo
from typing import TYPE_CHECKING

import typer

from notifier.cli import app
from notifier.cli.common import (
    MAX_ID,
    TIME_HELP,
    AppState,
    console,
    err_console,
    local_time,
    parse_interval,
    parse_time,
    print_json,
    state,
)
from notifier.errors import CallbackNotFound

if TYPE_CHECKING:
    from notifier import hotline
    from notifier.rendering import Renderer

hotline_app = typer.Typer(
    help="What to tell callers, who they are, and the calls they made.", no_args_is_help=True
)
callbacks_app = typer.Typer()  # help: the callback's docstring (it lists by default)
app.add_typer(hotline_app, name="hotline")
app.add_typer(callbacks_app, name="callbacks")

JSON = typer.Option(False, "--json", help="print one JSON object")
CALLBACK_WITHIN = timedelta(days=14)  # as far ahead as a callback may be promised (the console's limit too)


def _operator() -> str:
    """Who is at the terminal: $NOTIFIER_OPERATOR, else the login name."""
    try:
        return os.environ.get("NOTIFIER_OPERATOR") or getpass.getuser()
    except (KeyError, OSError):
        return ""


def _at(value: datetime | None, zone: tzinfo) -> str:
    return local_time(value, zone)


def _say(line: str = "") -> None:
    console.print(line, markup=False)


@hotline_app.command("script")
def script_(
    ctx: typer.Context,
    incident_id: str | None = typer.Argument(
        None, metavar="[ID]", help="one incident (default: every open one)"
    ),
    region: str | None = typer.Option(
        None, "--region", help="the caller's region code: times in its local time"
    ),
    locale: str | None = typer.Option(None, "--locale", help="ru | en (default: [notifier].default_locale)"),
    as_json: bool = JSON,
) -> None:
    """What an operator should say right now, for every open incident or one.

    Example: notifier hotline script --region 66
    """
    from notifier import hotline
    from notifier.db import read_session
    st = state(ctx)
    with read_session(st.engine()) as session:
        entries = hotline.script(session, st.config, incident_id, region=region, locale=locale)
    if as_json:
        print_json({"region": region, "incidents": [e.as_dict() for e in entries]})
        return
    if not entries:
        _say(
            "No open incidents: as far as we know, everything works. Log the call if the caller has a problem."
        )
        return
    for n, entry in enumerate(entries):
        if n:
            _say()
        note = "" if entry.affects_region is not False else f"  (does not affect region {region})"
        _say(f"== {entry.incident} — {entry.status}{note}")
        _say(entry.text.rstrip())


@hotline_app.command("lookup")
def lookup(
    ctx: typer.Context,
    query: str = typer.Argument(
        ..., help="phone (any format), e-mail, account number or part of the name; - reads one a line from stdin"
    ),
    locale: str | None = typer.Option(
        None, "--locale", help="language of the script (default: the caller's)"
    ),
    as_json: bool = JSON,
) -> None:
    """Find a caller by anything they can tell you; say whether they are affected and what to tell them.

    With - as the query, one query a line is read from standard input and each is answered
    as soon as it is typed (one start-up for a whole shift; with --json, one object a line).

    Example: notifier hotline lookup "8 (912) 345-67-89"
    """
    from notifier.rendering import Renderer

    st = state(ctx)
    renderer = Renderer(st.config)
    if query != "-":
        _answer(st, renderer, query, locale, as_json)
        return
    from notifier.errors import NotifierError

    if sys.stdin.isatty():
        err_console.print("One caller's phone, e-mail, account number or name a line; Ctrl-D to stop.", markup=False)
    for line in sys.stdin:
        if not line.strip():
            continue
        renderer.reload_if_changed()  # a template fixed during the shift is used at once
        try:
            _answer(st, renderer, line.strip(), locale, as_json)
        except NotifierError as exc:  # one line, and the next caller
            err_console.print(f"error: {exc}", markup=False)
        if not as_json:
            _say()
        sys.stdout.flush()


def _answer(st: AppState, renderer: Renderer, query: str, locale: str | None, as_json: bool) -> None:
    from notifier import hotline
    from notifier.db import read_session

    with read_session(st.engine()) as session:
        found = hotline.lookup(session, st.config, query, locale=locale, renderer=renderer)
    if as_json:
        print_json({"query": query, "found": [info.as_dict() for info in found], "total": found.total})
        return
    if not found:
        _say(f"Nobody matches {query!r}. Ask for another identifier (phone, e-mail, account number, name),")
        _say("or log the call by phone: notifier hotline log --caller PHONE --note …")
        return
    for n, info in enumerate(found):
        if n:
            _say()
        _print_caller(info, st.zone)
    if found.cut_off:
        _say()
        _say(found.cut_off + ".")


def _print_caller(info: hotline.CallerInfo, zone: tzinfo) -> None:
    from notifier.characters import display_email
    s = info.subscriber
    _say(f"{s.name or '(no name)'} — account {s.external_id or '—'}, {display_email(s.email) or 'no e-mail'}, "
         f"{s.phone or 'no phone'}, region {s.region}, {s.status}")  # fmt: skip
    if info.affected:
        _say(
            "AFFECTED by: "
            + ", ".join(f"{i.incident} «{i.title}» ({i.status})" for i in info.incidents if i.open)
        )
    elif info.recently_affected:
        _say("Was affected by: " + ", ".join(f"{i.incident} «{i.title}» (resolved {_at(i.resolved_at, zone)})"
                                             for i in info.incidents))  # fmt: skip
    else:
        _say("Not affected by any current or recent incident.")
    if info.messages:
        _say("Sent to them:")
        for m in info.messages:
            when = f"sent {_at(m.sent_at, zone)}" if m.sent_at else f"queued {_at(m.created_at, zone)}"
            _say(f"  {m.kind:<9} {m.incident or '':<8} {m.state:<9} {when}")
    if info.callbacks:
        for c in info.callbacks:
            late = "OVERDUE " if c.overdue else ""
            _say(
                f"Open callback #{c.callback.id}: {late}due {_at(c.callback.due_at, zone)}, owner {c.callback.owner}"
            )
    if info.calls:
        _say(f"Calls logged before: {info.calls}")
    for entry in info.script:
        _say(f"-- What to say ({entry.incident}):")
        _say(entry.text.rstrip())


@hotline_app.command("log")
def log(
    ctx: typer.Context,
    subscriber: str | None = typer.Option(None, "--subscriber", help="account number, e-mail, phone or name"),
    caller: str | None = typer.Option(
        None, "--caller", help="the caller's phone, when not a known subscriber"
    ),
    incident_id: str | None = typer.Option(None, "--incident", help="the incident the call was about"),
    note: str = typer.Option(..., "--note", help="what the caller said and what they were told"),
    callback_in: str | None = typer.Option(None, "--callback-in", help="promise a callback in e.g. 30m, 2h"),
    callback_at: str | None = typer.Option(
        None, "--callback-at", help=f"promise a callback at an ISO 8601 time; {TIME_HELP}"
    ),
    by: str | None = typer.Option(
        None, "--by", help="who took the call and owns the callback (default: you)"
    ),
    as_json: bool = JSON,
) -> None:
    """Record a hotline call and, if you promised one, the callback with its due time and owner.

    Example: notifier hotline log --subscriber ACC-000123 --note "Отчёт не уходит" --callback-in 2h
    """
    from notifier import hotline
    from notifier.characters import display_email
    from notifier.db import write_session
    from notifier.models import Subscriber, utcnow
    interval = (
        parse_interval(callback_in, "--callback-in", at_most=CALLBACK_WITHIN)
        if callback_in is not None
        else None
    )
    st = state(ctx)
    at = parse_time(callback_at, "--callback-at", st.zone)
    with write_session(st.engine()) as session:
        call, callback = hotline.log_call(
            session, st.config, subscriber_key=subscriber, caller_phone=caller, incident_ref=incident_id,
            note=note, callback_in=interval, callback_at=at, by=by if by is not None else _operator(),
            now=utcnow(),
        )  # fmt: skip
        known = session.get(Subscriber, call.subscriber_id) if call.subscriber_id else None
    if as_json:
        print_json({
            "call": call.id, "subscriber_id": call.subscriber_id, "phone": call.caller_phone,
            "incident": f"INC-{call.incident_id}" if call.incident_id else None,
            "callback": None if callback is None else {"id": callback.id, "due_at": callback.due_at,
                                                        "owner": callback.owner},
        })  # fmt: skip
        return
    about = f" about INC-{call.incident_id}" if call.incident_id else ""
    who = (
        f" from {known.name} ({known.external_id or display_email(known.email) or known.phone})"
        if known
        else ""
    )
    _say(f"Call #{call.id}{who} logged{about}.")
    if callback:
        _say(f"Callback #{callback.id} promised by {_at(callback.due_at, st.zone)}, owner {callback.owner}.")
        _say(f"When done: notifier callbacks done {callback.id} --outcome …")


@callbacks_app.callback(invoke_without_command=True)
def callbacks(
    ctx: typer.Context,
    overdue: bool = typer.Option(False, "--overdue", help="only open callbacks past their due time"),
    all_: bool = typer.Option(False, "--all", help="closed ones too"),
    as_json: bool = JSON,
) -> None:
    """List callbacks promised on the hotline, overdue first; `done N` closes one.

    Example: notifier callbacks --overdue
    """
    from notifier import hotline
    from notifier.characters import display_email
    from notifier.db import read_session
    from notifier.models import utcnow
    if ctx.invoked_subcommand is not None:
        return
    st = state(ctx)
    with read_session(st.engine()) as session:
        entries = hotline.list_callbacks(session, overdue_only=overdue, open_only=not all_, now=utcnow())
    if as_json:
        print_json({"callbacks": [e.as_dict() for e in entries]})
        return
    if not entries:
        _say("No overdue callbacks." if overdue else "No open callbacks.")
        return
    zone = st.zone
    for e in entries:
        cb, sub = e.callback, e.subscriber
        who = (
            f"{sub.name} ({sub.external_id or display_email(sub.email) or '—'})" if sub else "unknown caller"
        )
        phone = e.call.caller_phone or (sub.phone if sub else "") or "no phone"
        if cb.done_at:
            mark = f"done {_at(cb.done_at, zone)}{f' by {cb.closed_by}' if cb.closed_by else ''}: {cb.outcome}"
        else:
            mark = ("OVERDUE, " if e.overdue else "") + f"due {_at(cb.due_at, zone)}"
        _say(f"#{cb.id:<5} {mark} — {who}, {phone}, owner {cb.owner or '—'}"
             f"{', ' + e.incident_ref if e.incident_ref else ''}")  # fmt: skip
        if e.call.note:
            _say(f"       {e.call.note}")


@callbacks_app.command("done")
def done(
    ctx: typer.Context,
    callback_id: int = typer.Argument(..., metavar="N", help="the callback's number"),
    outcome: str = typer.Option(..., "--outcome", help="what came of the call"),
    by: str | None = typer.Option(None, "--by", help="who made the call, when not its owner"),
    as_json: bool = JSON,
) -> None:
    """Close a callback with its outcome.

    Example: notifier callbacks done 3 --outcome "Перезвонили, отчёт ушёл"
    """
    from notifier import hotline
    from notifier.db import write_session
    from notifier.models import utcnow
    if not 1 <= callback_id <= MAX_ID:
        raise CallbackNotFound(callback_id)
    st = state(ctx)
    with write_session(st.engine()) as session:
        callback = hotline.close_callback(session, callback_id, outcome, by or "", now=utcnow())
    kept = callback.done_at <= callback.due_at  # type: ignore[operator]
    if as_json:
        print_json(
            {
                "id": callback.id,
                "done_at": callback.done_at,
                "outcome": callback.outcome,
                "closed_by": callback.closed_by,
                "kept": kept,
            }
        )
        return
    _say(f"Callback #{callback.id} closed{'' if kept else ' (late)'}: {callback.outcome}")
