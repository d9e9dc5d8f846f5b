"""The incident lifecycle: declare, update, widen scope, resolve, edit; and its audience.

Owns the status machine, the audience snapshot (one ``INSERT … SELECT`` of the active
subscribers in the incident's regions who use one of its services) and deciding which
mailings each step owes (queued through ``outbox``). It does not send or render anything.
An incident declared during a planned maintenance of one of its regions records which
(``planned_work``), so its notices can say "this is the planned work announced on …".
Every function takes the Session it works in; writes expect a ``db.write_session``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, literal, or_, select
from sqlmodel import Session

from notifier import characters, compensation, languages, maintenance, outbox
from notifier.config import SEVERITIES, Config
from notifier.db import dialect_module
from notifier.errors import IncidentNotFound, InvalidTransition, UsageError
from notifier.languages import Texts, Untranslated
from notifier.models import AudienceMember, Incident, Subscriber, Update, UTCDateTime, utcnow

OPEN_STATUSES = ("investigating", "identified", "monitoring")
PUBLIC_UPDATE_KINDS = ("declared", "update")  # timeline kinds that are public status updates
# Any forward move, and back from monitoring to identified (the fix did not hold).
_ALLOWED = {
    "investigating": {"investigating", "identified", "monitoring"},
    "identified": {"identified", "monitoring"},
    "monitoring": {"monitoring", "identified"},
}
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


@dataclass(frozen=True)
class StepResult:
    """What one lifecycle step did, for the CLI, the API and the tests."""

    incident: Incident
    affected: int = 0  # audience size after the step
    added: int = 0  # audience members added by this step
    queued: dict[str, int] | None = None  # kind -> messages queued
    cancelled: int = 0  # unsent status notices cancelled
    apology_held: bool = False
    # Readers whose language lacks some of this step's texts (they get the default text, or
    # their apology is held): "37 English readers will get the Russian text: add --title-en".
    untranslated: tuple[Untranslated, ...] = ()


def parse_ref(ref: str | int) -> int:
    text = str(ref).strip()
    match = re.fullmatch(r"(?:INC-?)?(\d{1,9})", text, re.IGNORECASE)
    if not match:
        raise IncidentNotFound(text)
    return int(match.group(1))


def get(session: Session, ref: str | int, *, for_update: bool = False) -> Incident:
    query = select(Incident).where(Incident.id == parse_ref(ref))
    if for_update:
        query = query.with_for_update()
    incident = session.exec(query).scalars().first()  # type: ignore[call-overload]
    if incident is None:
        raise IncidentNotFound(str(ref))
    return incident


def _check_text(value: str, what: str, *, required: bool = True, multiline: bool = False) -> str:
    """The text to store: refused with control or direction characters (C1, NEL, U+2028 and
    U+202E included; a multi-line text may hold line breaks and tabs), zero-width ones stripped."""
    value = characters.strip_invisible((value or "").strip())
    if required and not value:
        raise UsageError(f"{what} must not be empty")
    problem = characters.problem(value, multiline=multiline)
    if problem:
        raise UsageError(f"{what} {problem}; remove it")
    return value


def _check_codes(config: Config, regions: list[str], services: list[str]) -> None:
    for code in regions:
        if code not in config.regions:
            raise UsageError(f"unknown region {code!r} (known: {', '.join(sorted(config.regions))})")
    for code in services:
        if code not in config.services:
            raise UsageError(f"unknown service {code!r} (known: {', '.join(sorted(config.services))})")


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(item.strip() for item in items if item.strip()))


def _select_affected(incident_id: int, regions: list[str], services: list[str], now: datetime):
    """Active subscribers in ``regions`` who use one of ``services`` (any when empty)."""
    conditions = [Subscriber.status == "active", Subscriber.region.in_(regions)]  # type: ignore[attr-defined]
    if services:
        conditions.append(or_(*(Subscriber.services.like(f"%;{code};%") for code in services)))  # type: ignore[attr-defined]
    return select(literal(incident_id), Subscriber.id, literal(now, UTCDateTime())).where(and_(*conditions))


def _snapshot(
    session: Session, incident: Incident, regions: list[str], services: list[str], now: datetime
) -> int:
    assert incident.id is not None
    module = dialect_module(session)
    stmt = (
        module.insert(AudienceMember)
        .from_select(
            ["incident_id", "subscriber_id", "added_at"],
            _select_affected(incident.id, regions, services, now),
        )
        .on_conflict_do_nothing()
        .execution_options(preserve_rowcount=True)
    )
    return session.exec(stmt).rowcount  # type: ignore[call-overload]


def audience_size(session: Session, incident_id: int) -> int:
    query = select(func.count()).select_from(AudienceMember).where(AudienceMember.incident_id == incident_id)
    return session.exec(query).scalar_one()  # type: ignore[call-overload]


def count_affected(session: Session, regions: list[str], services: list[str]) -> int:
    """How many active subscribers an incident over these regions and services would reach."""
    query = select(func.count()).select_from(_select_affected(0, regions, services, utcnow()).subquery())
    return session.exec(query).scalar_one()  # type: ignore[call-overload]


def active_subscribers(session: Session) -> int:
    query = select(func.count()).select_from(Subscriber).where(Subscriber.status == "active")
    return session.exec(query).scalar_one()  # type: ignore[call-overload]


def latest_public_update(session: Session, incident_id: int) -> Update | None:
    """The newest public status update (declared or update) of an incident."""
    query = (
        select(Update)
        .where(Update.incident_id == incident_id, Update.kind.in_(PUBLIC_UPDATE_KINDS))  # type: ignore[attr-defined]
        .order_by(Update.id.desc())  # type: ignore[union-attr]
        .limit(1)
    )
    return session.exec(query).scalars().first()  # type: ignore[call-overload]


def _record(
    session: Session, incident: Incident, kind: str, message: str, by: str, now: datetime,
    translations: Texts | None = None,
) -> Update:  # fmt: skip
    """A timeline entry (public for declared/update); flushed so that it has an id."""
    entry = Update(
        incident_id=incident.id, kind=kind, status=incident.status, message=message, author=by, created_at=now,
        translations=translations or None,
    )
    session.add(entry)
    session.flush()
    return entry


def _announce(session: Session, config: Config, incident: Incident, entry: Update, now: datetime) -> int:
    """Queue the hotline announcement of this step to every configured target."""
    return outbox.queue_announcements(session, config, incident, entry.id, now)  # type: ignore[arg-type]


def declare(
    session: Session,
    config: Config,
    *,
    title: str,
    regions: list[str],
    services: list[str] | None = None,
    severity: str = "major",
    message: str = "",
    started_at: datetime | None = None,
    by: str = "",
    now: datetime | None = None,
    texts: dict[str, dict[str, str | None]] | None = None,
) -> StepResult:
    """Open an incident, snapshot its audience and queue the first status notice.

    ``texts`` are the title and message in other languages (``{"en": {"title": …, "message": …}}``).
    """
    now = now or utcnow()
    title = _check_text(title, "--title")
    given = languages.check(config, texts, ("title", "message"))
    regions, services = _unique(regions), _unique(services or [])
    if not regions:
        raise UsageError("an incident needs at least one --region")
    _check_codes(config, regions, services)
    if severity not in SEVERITIES:
        raise UsageError(f"--severity must be one of {', '.join(SEVERITIES)}, not {severity!r}")
    started_at = started_at or now
    if started_at > now + timedelta(minutes=5):
        raise UsageError("--started-at is in the future")
    incident = Incident(
        title=title, severity=severity, status="investigating", regions=regions, services=services,
        started_at=started_at, declared_at=now, declared_by=by, updated_at=now,
        translations=_pick(given, ("title",)),
    )  # fmt: skip
    incident.planned_work = _planned_work(session, regions, started_at)
    session.add(incident)
    session.flush()
    text = _check_text(message, "--message", required=False, multiline=True)
    first = _record(session, incident, "declared", text, by, now, _pick(given, ("message",)))
    affected = _snapshot(session, incident, regions, services, now)
    queued = {}
    if config.mailing.send_status_notices:
        queued["status"] = outbox.queue_status_notices(session, incident, first.id, now, config=config)  # type: ignore[arg-type]
    queued["hotline"] = _announce(session, config, incident, first, now)
    gaps = _gaps(session, config, incident, [(incident, ("title",)), (first, ("message",))])
    return StepResult(incident, affected=affected, added=affected, queued=queued, untranslated=gaps)


def _pick(given: Texts, fields: tuple[str, ...]) -> Texts | None:
    """The translations of ``fields`` only (an incident's title, an update's message)."""
    picked = {locale: {f: v for f, v in values.items() if f in fields} for locale, values in given.items()}
    return {locale: values for locale, values in picked.items() if values} or None


def _gaps(
    session: Session, config: Config, incident: Incident, rows: list[tuple[Any, tuple[str, ...]]]
) -> tuple[Untranslated, ...]:
    """The languages of the audience that lack some of these texts, with their reader counts."""
    assert incident.id is not None
    return tuple(languages.untranslated(config, languages.readers(session, incident.id), rows))


def _planned_work(session: Session, regions: list[str], started_at: datetime) -> dict[str, Any] | None:
    """The maintenance under way in one of ``regions`` when the incident started, if any."""
    planned = maintenance.during(session, regions, started_at)
    if planned is None:
        return None
    return {"ref": planned.ref, "title": planned.title, "announced_at": planned.announced_at.isoformat()}


def post_update(
    session: Session, config: Config, ref: str | int, *, status: str, message: str, by: str = "",
    now: datetime | None = None, texts: dict[str, dict[str, str | None]] | None = None,
) -> StepResult:  # fmt: skip
    """A public status update; its notice supersedes any unsent older one. ``texts``: the
    message (and, once given, the title) in other languages."""
    now = now or utcnow()
    given = languages.check(config, texts, ("title", "message"))
    incident = get(session, ref, for_update=True)
    if incident.status == "resolved":
        raise InvalidTransition(f"{incident.ref} is resolved; a resolved incident takes no more updates")
    if status == "resolved":
        raise InvalidTransition(
            f"resolve {incident.ref} with: notifier incident resolve {incident.ref} --cause … --measures …"
        )
    if status not in _ALLOWED:
        raise UsageError(f"--status must be one of {', '.join(OPEN_STATUSES)}, not {status!r}")
    if status not in _ALLOWED[incident.status]:
        raise InvalidTransition(f"{incident.ref} cannot go from {incident.status} back to {status}")
    text = _check_text(message, "--message", multiline=True)
    incident.status, incident.updated_at = status, now
    if _pick(given, ("title",)):
        incident.translations = languages.merged(incident.translations, _pick(given, ("title",)) or {})
    entry = _record(session, incident, "update", text, by, now, _pick(given, ("message",)))
    queued = {}
    if config.mailing.send_status_notices:
        queued["status"] = outbox.queue_status_notices(session, incident, entry.id, now, config=config)  # type: ignore[arg-type]
    queued["hotline"] = _announce(session, config, incident, entry, now)
    gaps = _gaps(session, config, incident, [(incident, ("title",)), (entry, ("message",))])
    return StepResult(incident, affected=audience_size(session, incident.id), queued=queued, untranslated=gaps)  # type: ignore[arg-type]


def widen_scope(
    session: Session, config: Config, ref: str | int, *, add_regions: list[str], add_services: list[str],
    by: str = "", now: datetime | None = None,
) -> StepResult:  # fmt: skip
    """Add regions or services; the newly affected join the audience (nobody leaves it)."""
    now = now or utcnow()
    incident = get(session, ref, for_update=True)
    if incident.status == "resolved":
        raise InvalidTransition(f"{incident.ref} is resolved; its scope can no longer change")
    add_regions, add_services = _unique(add_regions), _unique(add_services)
    if not add_regions and not add_services:
        raise UsageError("give --add-region or --add-service")
    _check_codes(config, add_regions, add_services)
    if add_services and not incident.services:
        raise UsageError(f"{incident.ref} already covers every service; --add-service would change nothing")
    regions = _unique(incident.regions + add_regions)
    services = _unique(incident.services + add_services)
    incident.regions, incident.services, incident.updated_at = regions, services, now
    note = ", ".join([f"+region {r}" for r in add_regions] + [f"+service {s}" for s in add_services])
    added = _snapshot(session, incident, regions, services, now)
    if not added:  # nobody new: no timeline line, nothing to announce or send
        return StepResult(incident, affected=audience_size(session, incident.id), queued={})  # type: ignore[arg-type]
    entry = _record(session, incident, "scope", note, by, now)
    queued = {}
    if config.mailing.send_status_notices:
        latest = latest_public_update(session, incident.id)  # type: ignore[arg-type]
        assert latest is not None  # every incident is declared with one
        queued["status"] = outbox.queue_status_notices(session, incident, latest.id, now, config=config)  # type: ignore[arg-type]
    queued["hotline"] = _announce(session, config, incident, entry, now)
    return StepResult(incident, affected=audience_size(session, incident.id), added=added, queued=queued)  # type: ignore[arg-type]


def resolve(
    session: Session, config: Config, ref: str | int, *, cause: str = "", measures: str = "",
    compensation_text: str | None = None, resolved_at: datetime | None = None, by: str = "",
    now: datetime | None = None, texts: dict[str, dict[str, str | None]] | None = None,
) -> StepResult:  # fmt: skip
    """Close the incident: cancel unsent status notices, queue (or hold) the apology.

    ``texts``: the title, cause and measures in other languages. A language of the audience
    without them has its apologies held (``languages.apology_gaps``) until ``edit`` gives
    them, unless ``[mailing].fallback_locale`` sends the default text.
    """
    now = now or utcnow()
    given = languages.check(config, texts, languages.INCIDENT_FIELDS)
    incident = get(session, ref, for_update=True)
    if incident.status == "resolved":
        hint = (
            f" (its apology is held: notifier incident edit {incident.ref} --cause … --measures …)"
            if incident.apology_state == "held"
            else ""
        )
        raise InvalidTransition(f"{incident.ref} is already resolved{hint}")
    resolved_at = resolved_at or now
    if resolved_at < incident.started_at:
        raise UsageError("--resolved-at is before the incident started")
    if resolved_at > now + timedelta(minutes=5):
        raise UsageError("--resolved-at is in the future")
    incident.cause = _check_text(cause, "--cause", required=False, multiline=True)
    incident.measures = _check_text(measures, "--measures", required=False, multiline=True)
    incident.translations = languages.merged(incident.translations, given)
    incident.status, incident.resolved_at, incident.resolved_by, incident.updated_at = (
        "resolved",
        resolved_at,
        by,
        now,
    )
    _set_compensation(config, incident, compensation_text)
    entry = _record(session, incident, "resolved", "", by, now)
    cancelled = outbox.cancel_unsent(session, "cancelled: the incident is resolved", kind="status",
                                     incident_id=incident.id)  # fmt: skip
    queued, gaps = _queue_apology_if_ready(session, config, incident, now)
    queued["hotline"] = _announce(session, config, incident, entry, now)
    return StepResult(
        incident, affected=audience_size(session, incident.id), queued=queued, cancelled=cancelled,  # type: ignore[arg-type]
        apology_held=incident.apology_state == "held", untranslated=gaps,
    )  # fmt: skip


def edit(
    session: Session, config: Config, ref: str | int, *, cause: str | None = None, measures: str | None = None,
    compensation_text: str | None = None, by: str = "", now: datetime | None = None,
    texts: dict[str, dict[str, str | None]] | None = None,
) -> StepResult:  # fmt: skip
    """Complete a resolved incident's cause, measures or compensation; releases a held apology.

    ``texts`` give the title, cause and measures in other languages; once the apology is
    queued, only the languages still held may be completed (that releases theirs).
    """
    now = now or utcnow()
    incident = get(session, ref, for_update=True)
    given = languages.check(config, texts, languages.INCIDENT_FIELDS)
    if cause is None and measures is None and compensation_text is None and not given:
        raise UsageError("give --cause, --measures, --compensation or a text in another language (--cause-en …)")
    if incident.apology_state == "queued":
        _only_held_languages(session, config, incident, given, cause, measures, compensation_text)
    incident.translations = languages.merged(incident.translations, given)
    if cause is not None:
        incident.cause = _check_text(cause, "--cause", multiline=True)
    if measures is not None:
        incident.measures = _check_text(measures, "--measures", multiline=True)
    if compensation_text is not None:
        _set_compensation(config, incident, compensation_text)
    incident.updated_at = now
    _record(session, incident, "edit", "", by, now)
    queued, gaps = _queue_apology_if_ready(session, config, incident, now) if incident.status == "resolved" else ({}, ())
    return StepResult(
        incident, affected=audience_size(session, incident.id), queued=queued,  # type: ignore[arg-type]
        apology_held=incident.apology_state == "held", untranslated=gaps,
    )  # fmt: skip


def _only_held_languages(
    session: Session, config: Config, incident: Incident, given: Texts, cause: str | None,
    measures: str | None, compensation_text: str | None,
) -> None:  # fmt: skip
    """Once apologies are queued, an edit may only give the texts of languages still held."""
    held = {gap.locale for gap in held_languages(session, config, incident)}
    if cause is not None or measures is not None or compensation_text is not None or not held:
        raise InvalidTransition(f"{incident.ref}'s apology has already been queued; it can no longer be edited")
    late = sorted(set(given) - held)
    if late:
        raise InvalidTransition(
            f"{incident.ref}'s {languages.language_name(late[0])} apologies have already been queued; "
            "their texts can no longer be edited"
        )


def held_languages(session: Session, config: Config, incident: Incident) -> list[Untranslated]:
    """The languages of a resolved incident's audience whose apologies wait for their texts."""
    if incident.status != "resolved" or not (incident.cause and incident.measures):
        return []
    counts = languages.readers(session, incident.id)  # type: ignore[arg-type]
    return [gap for gap in languages.apology_gaps(config, incident, counts) if gap.held]


def _set_compensation(config: Config, incident: Incident, text: str | None) -> None:
    if text is not None:
        incident.compensation_days = compensation.parse_override(config.compensation, text)
    elif incident.resolved_at is not None:
        duration = incident.resolved_at - incident.started_at
        incident.compensation_days = compensation.by_policy(config.compensation, incident.severity, duration)


def _queue_apology_if_ready(
    session: Session, config: Config, incident: Incident, now: datetime
) -> tuple[dict[str, int], tuple[Untranslated, ...]]:
    """Queue the apologies of every language that has its texts; the rest are held (and said so)."""
    if not (incident.cause and incident.measures):
        incident.apology_state = "held"
        return {}, ()
    assert incident.resolved_at is not None and incident.id is not None
    counts = languages.readers(session, incident.id)
    gaps = tuple(languages.apology_gaps(config, incident, counts))
    held = {gap.locale for gap in gaps if gap.held}
    ready = [locale for locale in languages.LOCALES if locale not in held]
    if held and not any(counts.get(locale) for locale in ready):
        incident.apology_state = "held"
        return {}, gaps
    due = max(incident.resolved_at, now) + config.mailing.apology_delay
    incident.apology_state = "queued"
    return {"apology": outbox.queue_apologies(session, incident, due, now, config=config, locales=ready)}, gaps


def list_incidents(session: Session, *, open_only: bool = False, limit: int = 50) -> list[Incident]:
    query = select(Incident).order_by(Incident.id.desc()).limit(limit)  # type: ignore[union-attr]
    if open_only:
        query = query.where(Incident.status != "resolved")
    return list(session.exec(query).scalars())  # type: ignore[call-overload]


def as_dict(incident: Incident) -> dict[str, Any]:
    """The incident's own fields, as the CLI's JSON and the report show them."""
    duration = (incident.resolved_at - incident.started_at) if incident.resolved_at else None
    return {
        "id": incident.ref,
        "title": incident.title,
        "severity": incident.severity,
        "status": incident.status,
        "regions": incident.regions,
        "services": incident.services,
        "started_at": incident.started_at,
        "declared_at": incident.declared_at,
        "resolved_at": incident.resolved_at,
        "duration_seconds": duration.total_seconds() if duration else None,
        "cause": incident.cause,
        "measures": incident.measures,
        "compensation_days": incident.compensation_days,
        "apology": incident.apology_state,
        "translations": incident.translations or {},
    }


def timeline_dicts(session: Session, incident_id: int) -> list[dict[str, Any]]:
    return [
        {"at": u.created_at, "kind": u.kind, "status": u.status, "message": u.message, "by": u.author,
         "translations": u.translations or {}}
        for u in timeline(session, incident_id)
    ]


def timeline(session: Session, incident_id: int) -> list[Update]:
    query = select(Update).where(Update.incident_id == incident_id).order_by(Update.id)  # type: ignore[arg-type]
    return list(session.exec(query).scalars())  # type: ignore[call-overload]
