"""`notifier maintenance …`: schedule, reschedule, extend, cancel, complete, list, show planned work."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer

from notifier.cli import app
from notifier.cli.common import console, parse_time, print_json, state, thousands
from notifier.errors import UsageError

if TYPE_CHECKING:
    from notifier.config import Config
    from notifier.maintenance import MaintenanceStep
    from notifier.models import Maintenance

maintenance_app = typer.Typer(
    help="Announce planned work to the people it affects: reminders, start and end notices.", no_args_is_help=True
)
app.add_typer(maintenance_app, name="maintenance")

JSON = typer.Option(False, "--json", help="print one JSON object")
BY = typer.Option("", "--by", help="who does this")
REF = typer.Argument(..., metavar="ID", help="maintenance id, e.g. MNT-3")


def _ready(config: Config) -> None:
    """Refuse to queue anything while a template of planned work is broken."""
    from notifier.rendering import PLANNED_KINDS, Renderer
    Renderer(config).ensure_ready([kind for kind in PLANNED_KINDS if kind != "subscription_confirm"])


def _time(value: str, option: str) -> Any:
    parsed = parse_time(value, option)
    if parsed is None:
        raise UsageError(f"{option} is required")
    return parsed


def as_dict(item: Maintenance, **extra: Any) -> dict[str, Any]:
    from notifier import maintenance
    from notifier.models import utcnow
    now = utcnow()
    return {
        "id": item.ref, "title": item.title, "message": item.message, "regions": item.regions,
        "services": item.services, "starts_at": item.starts_at, "ends_at": item.ends_at, "status": item.status,
        "phase": maintenance.phase(item, now), "announced_at": item.announced_at, "completed_at": item.completed_at,
        "cancelled_at": item.cancelled_at, **extra,
    }  # fmt: skip


def _done(step: MaintenanceStep, as_json: bool, verb: str) -> None:
    if as_json:
        print_json(as_dict(step.maintenance, affected=step.affected, queued=step.queued, cancelled=step.cancelled))
        return
    queued = ", ".join(f"{thousands(n)} {kind}" for kind, n in step.queued.items() if n) or "nothing"
    cancelled = f"; {thousands(step.cancelled)} unsent cancelled" if step.cancelled else ""
    console.print(f"{step.maintenance.ref} «{step.maintenance.title}» {verb}: {thousands(step.affected)} "
                  f"subscribers; queued {queued}{cancelled}.")  # fmt: skip


@maintenance_app.command("schedule")
def schedule(
    ctx: typer.Context,
    title: str = typer.Option(..., "--title", help="what will be done, in words subscribers understand"),
    region: list[str] = typer.Option(..., "--region", help="affected region code (repeat for more)"),
    service: list[str] = typer.Option([], "--service", help="affected service code (repeat; none = all)"),
    starts: str = typer.Option(..., "--starts", help="ISO 8601 start, e.g. 2027-03-03T02:00+03:00"),
    ends: str = typer.Option(..., "--ends", help="ISO 8601 end"),
    message: str = typer.Option("", "--message", help="what subscribers should know or do"),
    title_en: str | None = typer.Option(None, "--title-en", help="the title in English, for English readers"),
    message_en: str | None = typer.Option(None, "--message-en", help="the message in English"),
    by: str = BY,
    as_json: bool = JSON,
) -> None:
    """Schedule planned work: snapshot its audience, announce it now, plan the reminders and notices.

    English readers read --title-en and --message-en where given, else the default language's texts.

    Example: notifier maintenance schedule --title "Обновление сервера БД" --region 66 --service tax-reporting
    --starts 2027-03-03T02:00+05:00 --ends 2027-03-03T04:00+05:00 --message "Отчёты уйдут после работ"
    """
    from notifier import maintenance
    from notifier.db import write_session
    st = state(ctx)
    _ready(st.config)
    with write_session(st.engine()) as session:
        step = maintenance.schedule(session, st.config, title=title, regions=region, services=service,
                                    starts_at=_time(starts, "--starts"), ends_at=_time(ends, "--ends"),
                                    message=message, by=by,
                                    texts={"en": {"title": title_en, "message": message_en}})  # fmt: skip
    _done(step, as_json, "scheduled")


@maintenance_app.command("reschedule")
def reschedule(
    ctx: typer.Context, ref: str = REF,
    starts: str = typer.Option(..., "--starts", help="the new ISO 8601 start"),
    ends: str = typer.Option(..., "--ends", help="the new ISO 8601 end"), by: str = BY, as_json: bool = JSON,
) -> None:  # fmt: skip
    """Move planned work: those already told get the new times, the old reminders are cancelled.

    Example: notifier maintenance reschedule MNT-1 --starts 2027-03-10T02:00+05:00 --ends 2027-03-10T04:00+05:00
    """
    from notifier import maintenance
    from notifier.db import write_session
    st = state(ctx)
    _ready(st.config)
    with write_session(st.engine()) as session:
        step = maintenance.reschedule(session, st.config, ref, starts_at=_time(starts, "--starts"),
                                      ends_at=_time(ends, "--ends"), by=by)  # fmt: skip
    _done(step, as_json, "rescheduled")


@maintenance_app.command("extend")
def extend(
    ctx: typer.Context, ref: str = REF, ends: str = typer.Option(..., "--ends", help="the new, later ISO 8601 end"),
    by: str = BY, as_json: bool = JSON,
) -> None:  # fmt: skip
    """It takes longer: a later end, and a notice saying so.

    Example: notifier maintenance extend MNT-1 --ends 2027-03-03T06:00+05:00
    """
    from notifier import maintenance
    from notifier.db import write_session
    st = state(ctx)
    _ready(st.config)
    with write_session(st.engine()) as session:
        step = maintenance.extend(session, st.config, ref, ends_at=_time(ends, "--ends"), by=by)
    _done(step, as_json, "extended")


@maintenance_app.command("cancel")
def cancel(ctx: typer.Context, ref: str = REF, by: str = BY, as_json: bool = JSON) -> None:
    """Call planned work off: reminders are cancelled, those already told hear it is off.

    Example: notifier maintenance cancel MNT-1
    """
    from notifier import maintenance
    from notifier.db import write_session
    st = state(ctx)
    _ready(st.config)
    with write_session(st.engine()) as session:
        step = maintenance.cancel(session, st.config, ref, by=by)
    _done(step, as_json, "cancelled")


@maintenance_app.command("complete")
def complete(ctx: typer.Context, ref: str = REF, by: str = BY, as_json: bool = JSON) -> None:
    """The work is done: the completed notice goes to its audience.

    Example: notifier maintenance complete MNT-1
    """
    from notifier import maintenance
    from notifier.db import write_session
    st = state(ctx)
    _ready(st.config)
    with write_session(st.engine()) as session:
        step = maintenance.complete(session, st.config, ref, by=by)
    _done(step, as_json, "completed")


@maintenance_app.command("list")
def list_(ctx: typer.Context, as_json: bool = JSON) -> None:
    """Planned work, latest start first.

    Example: notifier maintenance list --json
    """
    from notifier import maintenance
    from notifier.db import read_session
    from notifier.models import utcnow
    st = state(ctx)
    with read_session(st.engine()) as session:
        items = maintenance.list_maintenance(session)
    if as_json:
        print_json({"maintenance": [as_dict(item) for item in items]})
        return
    now = utcnow()
    for item in items:
        console.print(f"{item.ref}  {maintenance.phase(item, now):<12} {item.starts_at:%Y-%m-%d %H:%M}–"
                      f"{item.ends_at:%H:%M} UTC  {','.join(item.regions)}  {item.title}", markup=False)  # fmt: skip
    if not items:
        console.print("No planned work.")


@maintenance_app.command("show")
def show(ctx: typer.Context, ref: str = REF, as_json: bool = JSON) -> None:
    """One maintenance with its audience and its messages by kind and state (the announcement,
    reminders and notices: its report).

    Example: notifier maintenance show MNT-1
    """
    from notifier import maintenance
    from notifier.db import read_session
    from notifier.models import utcnow
    st = state(ctx)
    with read_session(st.engine()) as session:
        item = maintenance.get(session, ref)
        audience = maintenance.audience_size(session, item.id)  # type: ignore[arg-type]
        counts = maintenance.message_counts(session, item.id)  # type: ignore[arg-type]
    if as_json:
        print_json(as_dict(item, audience=audience, messages=counts))
        return
    console.print(f"{item.ref} «{item.title}»: {maintenance.phase(item, utcnow())}, "
                  f"{item.starts_at:%Y-%m-%d %H:%M} – {item.ends_at:%Y-%m-%d %H:%M} UTC, "
                  f"regions {', '.join(item.regions)}; audience {thousands(audience)}", markup=False)  # fmt: skip
    for kind, states in sorted(counts.items()):
        console.print(f"  {kind}: " + ", ".join(f"{n} {state}" for state, n in sorted(states.items())), markup=False)
