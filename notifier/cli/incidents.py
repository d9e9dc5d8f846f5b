"""`notifier incident …`: declare, update, scope, resolve, edit, list, show.

Texts in another language sit beside the default ones: ``--title`` (``[notifier].default_locale``)
and ``--title-en``, likewise ``--message-en``, ``--cause-en``, ``--measures-en``; a language
of the audience without them is named with its reader count (``languages.Untranslated``).
Times are printed in the operator's zone with their offset, and read in it when given
without one (``[notifier].operator_timezone``, else this machine's).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer

from notifier.cli import app
from notifier.cli.common import (
    TIME_HELP,
    console,
    err_console,
    local_time,
    parse_time,
    print_json,
    state,
    thousands,
)

if TYPE_CHECKING:
    from notifier.config import Config
    from notifier.incidents import StepResult

incident_app = typer.Typer(
    help="Declare, update, widen, resolve and inspect incidents.", no_args_is_help=True
)
app.add_typer(incident_app, name="incident")

JSON = typer.Option(False, "--json", help="print one JSON object")
BY = typer.Option("", "--by", help="who does this (recorded in the timeline)")
TITLE_EN = typer.Option(None, "--title-en", help="the title in English, for English readers")
MESSAGE_EN = typer.Option(None, "--message-en", help="the message in English")
CAUSE_EN = typer.Option(None, "--cause-en", help="the cause in English")
MEASURES_EN = typer.Option(None, "--measures-en", help="the measures in English")


def _english(**fields: str | None) -> dict[str, dict[str, str | None]]:
    """The ``--…-en`` options as ``incidents`` takes other languages' texts."""
    return {"en": fields}


def _step_json(result: StepResult, **extra: Any) -> dict[str, Any]:
    from notifier import incidents
    return {
        **incidents.as_dict(result.incident),
        "affected": result.affected,
        "added": result.added,
        "queued": result.queued or {},
        "cancelled": result.cancelled,
        "apology_held": result.apology_held,
        "untranslated": [gap.as_dict() for gap in result.untranslated],
        **extra,
    }


def _say_untranslated(result: StepResult) -> None:
    """One line per language of the audience that lacks this step's texts."""
    for gap in result.untranslated:
        err_console.print(f"warning: {gap.notice()}", markup=False)


def _templates_ready(config: Config, *kinds: str) -> None:
    """Refuse to queue anything while a template this step needs is broken (every command that
    queues messages calls it first: declare, update, scope, resolve, edit)."""
    from notifier.rendering import Renderer
    needed = [k for k in kinds if k != "status" or config.mailing.send_status_notices]
    if "hotline" in needed and not config.hotline.targets:
        needed.remove("hotline")
    if needed:
        Renderer(config).ensure_ready(needed)


def _queued_line(result: StepResult) -> str:
    parts = [
        f"{thousands(n)} {kind} message{'s' if n != 1 else ''}" for kind, n in (result.queued or {}).items()
    ]
    return "Queued " + ", ".join(parts) + "." if parts else "Nothing queued."


@incident_app.command("declare")
def declare(
    ctx: typer.Context,
    title: str = typer.Option(..., "--title", help="what is broken, in words subscribers understand"),
    region: list[str] = typer.Option(..., "--region", help="affected region code (repeat for more)"),
    service: list[str] = typer.Option(
        [], "--service", help="affected service code (repeat; none = all services)"
    ),
    severity: str = typer.Option("major", "--severity", help="minor | major | critical"),
    message: str = typer.Option("", "--message", help="the first public status message"),
    started_at: str | None = typer.Option(
        None, "--started-at", help=f"ISO 8601 time the outage began (default now); {TIME_HELP}"
    ),
    title_en: str | None = TITLE_EN,
    message_en: str | None = MESSAGE_EN,
    by: str = BY,
    as_json: bool = JSON,
) -> None:
    """Declare an incident: snapshot the affected audience and queue the first status notice.

    Example: notifier incident declare --title "Отчёты не отправляются" --title-en "Reports are not being sent"
    --region 66 --region 54 --service tax-reporting --severity major --message "Ищем причину"
    --message-en "Looking for the cause" --by ivanov
    """
    from notifier import incidents
    from notifier.db import write_session
    st = state(ctx)
    _templates_ready(st.config, "status", "hotline")
    with write_session(st.engine()) as session:
        result = incidents.declare(
            session, st.config, title=title, regions=region, services=service, severity=severity,
            message=message, started_at=parse_time(started_at, "--started-at", st.zone), by=by,
            texts=_english(title=title_en, message=message_en),
        )  # fmt: skip
        total = incidents.active_subscribers(session)
    share = 100.0 * result.affected / total if total else 0.0
    if as_json:
        print_json(_step_json(result, active_subscribers=total, share_percent=round(share, 2)))
        return
    console.print(
        f"Declared {result.incident.ref} «{result.incident.title}»: {thousands(result.affected)} subscribers affected, "
        f"{share:.1f} % of {thousands(total)} active. {_queued_line(result)}"
    )
    _say_untranslated(result)


@incident_app.command("update")
def update(
    ctx: typer.Context,
    incident_id: str = typer.Argument(..., metavar="ID", help="incident id, e.g. INC-3"),
    status: str = typer.Option(..., "--status", help="investigating | identified | monitoring"),
    message: str = typer.Option(..., "--message", help="the public status message"),
    message_en: str | None = MESSAGE_EN,
    title_en: str | None = typer.Option(None, "--title-en", help="the title in English, if not given yet"),
    by: str = BY,
    as_json: bool = JSON,
) -> None:
    """Post a public status update; its notice replaces any older one not yet sent.

    Example: notifier incident update INC-1 --status identified --message "Отказал сервер БД, переключаем на резерв"
    --message-en "A database server failed; switching to the standby"
    """
    from notifier import incidents
    from notifier.db import write_session
    st = state(ctx)
    _templates_ready(st.config, "status", "hotline")
    with write_session(st.engine()) as session:
        result = incidents.post_update(session, st.config, incident_id, status=status, message=message, by=by,
                                       texts=_english(message=message_en, title=title_en))  # fmt: skip
    if as_json:
        print_json(_step_json(result))
        return
    console.print(f"{result.incident.ref} is now {result.incident.status}. {_queued_line(result)}")
    _say_untranslated(result)


@incident_app.command("scope")
def scope(
    ctx: typer.Context,
    incident_id: str = typer.Argument(..., metavar="ID", help="incident id"),
    add_region: list[str] = typer.Option([], "--add-region", help="region to add (repeat)"),
    add_service: list[str] = typer.Option([], "--add-service", help="service to add (repeat)"),
    by: str = BY,
    as_json: bool = JSON,
) -> None:
    """Widen an incident: the newly affected join its audience and get the latest notice.

    Example: notifier incident scope INC-1 --add-region 74
    """
    from notifier import incidents
    from notifier.db import write_session
    st = state(ctx)
    _templates_ready(st.config, "status", "hotline")
    with write_session(st.engine()) as session:
        result = incidents.widen_scope(
            session, st.config, incident_id, add_regions=add_region, add_services=add_service, by=by
        )
    if as_json:
        print_json(_step_json(result))
        return
    added = [f"region {code}" for code in dict.fromkeys(add_region)] + [
        f"service {code}" for code in dict.fromkeys(add_service)
    ]
    if not result.added:
        console.print(
            f"{result.incident.ref}: adding {', '.join(added)} reaches nobody new "
            f"({thousands(result.affected)} affected, as before). Nothing queued."
        )
        return
    console.print(
        f"{result.incident.ref} now also covers {', '.join(added)}: "
        f"{thousands(result.added)} more subscribers, {thousands(result.affected)} in all. {_queued_line(result)}"
    )


@incident_app.command("resolve")
def resolve(
    ctx: typer.Context,
    incident_id: str = typer.Argument(..., metavar="ID", help="incident id"),
    cause: str = typer.Option("", "--cause", help="what caused it, explained for subscribers"),
    measures: str = typer.Option("", "--measures", help="what was done so it does not happen again"),
    compensation: str | None = typer.Option(
        None, "--compensation", help="free days, e.g. 14d, or none (default: policy)"
    ),
    resolved_at: str | None = typer.Option(
        None, "--resolved-at", help=f"ISO 8601 time service came back (default now); {TIME_HELP}"
    ),
    title_en: str | None = TITLE_EN,
    cause_en: str | None = CAUSE_EN,
    measures_en: str | None = MEASURES_EN,
    by: str = BY,
    as_json: bool = JSON,
) -> None:
    """Resolve an incident and queue the apology (held until a cause and measures are given;
    an English reader's until they are given in English too, unless [mailing].fallback_locale).

    Example: notifier incident resolve INC-1 --cause "Отказал дисковый массив сервера БД"
    --measures "Перевели базу на новый кластер с резервной копией" --cause-en "A disk array failed"
    --measures-en "The database moved to a new cluster with a standby copy" --by ivanov
    """
    from notifier import incidents
    from notifier.db import write_session
    st = state(ctx)
    _templates_ready(st.config, "apology", "hotline")
    with write_session(st.engine()) as session:
        result = incidents.resolve(
            session, st.config, incident_id, cause=cause, measures=measures, compensation_text=compensation,
            resolved_at=parse_time(resolved_at, "--resolved-at", st.zone), by=by,
            texts=_english(title=title_en, cause=cause_en, measures=measures_en),
        )  # fmt: skip
    if as_json:
        print_json(_step_json(result))
        return
    console.print(
        f"{result.incident.ref} is resolved; {thousands(result.cancelled)} unsent status notices cancelled."
    )
    if result.apology_held and not (result.incident.cause and result.incident.measures):
        console.print(
            f"The apology is HELD: it needs a cause and measures. Release it with: notifier incident edit "
            f"{result.incident.ref} --cause … --measures …"
        )
    else:
        console.print(_queued_line(result))
    _say_untranslated(result)


@incident_app.command("edit")
def edit(
    ctx: typer.Context,
    incident_id: str = typer.Argument(..., metavar="ID", help="incident id"),
    cause: str | None = typer.Option(None, "--cause", help="what caused it"),
    measures: str | None = typer.Option(None, "--measures", help="what was done about it"),
    compensation: str | None = typer.Option(None, "--compensation", help="free days, e.g. 14d, or none"),
    title_en: str | None = TITLE_EN,
    cause_en: str | None = CAUSE_EN,
    measures_en: str | None = MEASURES_EN,
    by: str = BY,
    as_json: bool = JSON,
) -> None:
    """Complete a resolved incident's cause, measures or compensation, or its texts in English;
    releases a held apology (the English readers' once their texts are there).

    Example: notifier incident edit INC-1 --cause "Отказ сервера БД" --measures "Новый кластер"

    Example: notifier incident edit INC-1 --title-en "Reports were not sent" --cause-en "A database server failed"
    --measures-en "A new cluster with a standby"
    """
    from notifier import incidents
    from notifier.db import write_session
    st = state(ctx)
    _templates_ready(st.config, "apology")
    with write_session(st.engine()) as session:
        result = incidents.edit(
            session, st.config, incident_id, cause=cause, measures=measures, compensation_text=compensation,
            by=by, texts=_english(title=title_en, cause=cause_en, measures=measures_en),
        )  # fmt: skip
    if as_json:
        print_json(_step_json(result))
        return
    if result.apology_held and not (result.incident.cause and result.incident.measures):
        console.print(
            f"{result.incident.ref} updated; the apology is still held (it needs both a cause and measures)."
        )
    else:
        console.print(f"{result.incident.ref} updated. {_queued_line(result)}")
    _say_untranslated(result)


@incident_app.command("list")
def list_(
    ctx: typer.Context,
    open_only: bool = typer.Option(False, "--open", help="only incidents not yet resolved"),
    as_json: bool = JSON,
) -> None:
    """List incidents, newest first.

    Example: notifier incident list --open
    """
    from notifier import incidents
    from notifier.db import read_session
    st = state(ctx)
    with read_session(st.engine()) as session:
        found = incidents.list_incidents(session, open_only=open_only)
        sizes = {i.id: incidents.audience_size(session, i.id) for i in found}  # type: ignore[arg-type]
    if as_json:
        print_json({"incidents": [{**incidents.as_dict(i), "affected": sizes[i.id]} for i in found]})
        return
    if not found:
        console.print("No incidents.")
    for i in found:
        console.print(
            f"{i.ref:<8} {i.status:<13} {i.severity:<8} {thousands(sizes[i.id]):>9} affected  "
            f"regions {','.join(i.regions)}  {i.title}",
            markup=False,
        )


@incident_app.command("show")
def show(
    ctx: typer.Context,
    incident_id: str = typer.Argument(..., metavar="ID", help="incident id"),
    as_json: bool = JSON,
) -> None:
    """Show one incident with its timeline.

    Example: notifier incident show INC-1
    """
    from notifier import incidents
    from notifier.db import read_session
    st = state(ctx)
    with read_session(st.engine()) as session:
        incident = incidents.get(session, incident_id)
        size = incidents.audience_size(session, incident.id)  # type: ignore[arg-type]
        timeline = incidents.timeline_dicts(session, incident.id)  # type: ignore[arg-type]
    if as_json:
        print_json({**incidents.as_dict(incident), "affected": size, "timeline": timeline})
        return
    services = ", ".join(incident.services) or "all services"
    console.print(f"{incident.ref} «{incident.title}» — {incident.status}, {incident.severity}", markup=False)
    console.print(
        f"Regions: {', '.join(incident.regions)}; services: {services}; {thousands(size)} affected",
        markup=False,
    )
    for locale, texts in (incident.translations or {}).items():
        if texts.get("title"):
            console.print(f"  {locale}: «{texts['title']}»", markup=False)
    zone = st.zone
    console.print(f"Started {local_time(incident.started_at, zone)}", markup=False)
    if incident.resolved_at:
        console.print(
            f"Resolved {local_time(incident.resolved_at, zone)}; apology: {incident.apology_state}", markup=False
        )
    for entry in timeline:
        who = f" ({entry['by']})" if entry["by"] else ""
        console.print(
            f"  {local_time(entry['at'], zone)} {entry['kind']:<9} {entry['status']:<13}{who} {entry['message']}",
            markup=False,
        )
