"""What the internal notices tell staff: the stale-incident reminder, the callback escalation, and
the note that a mailing is paused because its template failed.

Owns the template context of the kinds that go to our own people, not to subscribers
(``templates/internal/…``; ``over_budget``: an SMS mailing held over its budget): who is waiting, since when, who owns it, and the exact command
that settles it. ``rendering.Renderer`` compiles and runs the templates; this module only
turns rows (Incident, Update, Callback, Call, Subscriber) into plain values, with times in
the region of the person concerned. It neither queues (``hotline``) nor sends anything.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from notifier.config import Config
from notifier.models import Call, Callback, Incident, MailingPause, Subscriber, Update, utcnow
from notifier.samples import sample_incident, sample_subscriber, sample_update
from notifier.wording import format_duration, moment, status_label, zone_label


def display_phone(phone: str | None) -> str:
    """``+79123456789`` -> ``+7 912 345-67-89``; anything unparsable as it is."""
    if not phone:
        return ""
    import phonenumbers  # ~40 ms to load: only when a notice shows a caller's number

    try:
        number = phonenumbers.parse(phone, None)
    except phonenumbers.NumberParseException:
        return phone
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)


def _zone(config: Config, *codes: str | None) -> tuple[str | None, ZoneInfo, str]:
    """The first known region among ``codes``: code, zone and zone id; UTC when none is known."""
    for code in codes:
        if code and code in config.regions:
            region = config.regions[code]
            return code, region.zone, region.timezone
    return None, ZoneInfo("UTC"), "UTC"


def _incident(config: Config, incident: Incident, locale: str) -> dict[str, Any]:
    names = [config.regions[c].name.get(locale) if c in config.regions else c for c in incident.regions]
    return {
        "ref": incident.ref,
        "title": incident.title,
        "status": incident.status,
        "status_label": status_label(incident.status, locale, sentence=False),
        "severity": incident.severity,
        "regions_text": ", ".join(names),
    }


def _common(config: Config, locale: str) -> dict[str, Any]:
    return {
        "locale": locale,
        "company": config.notifier.company.get(locale),
        "hotline_phone": config.notifier.hotline_phone,
        "support_email": config.notifier.support_email,
    }


def reminder_context(
    config: Config, *, incident: Incident, update: Update | None, locale: str, now: datetime | None = None
) -> dict[str, Any]:
    """An open incident that has been silent too long: since when, and the command to post an update."""
    now = now or utcnow()
    _, zone, timezone = _zone(config, *incident.regions)
    label = zone_label(timezone, locale)
    last = update.created_at if update else incident.declared_at
    return {
        **_common(config, locale),
        "incident": _incident(config, incident, locale),
        "silence": format_duration(now - last, locale),
        "silence_minutes": max(0, int((now - last).total_seconds() // 60)),
        "last_update": {
            "time": moment(last, zone, label, locale),
            "message": update.message if update else "",
        },
        "command": f"notifier incident update {incident.ref} --status {incident.status} --message …",
    }


def escalation_context(
    config: Config, *, incident: Incident | None, callback: Callback, call: Call,
    subscriber: Subscriber | None, locale: str, level: int | None = None, now: datetime | None = None,
) -> dict[str, Any]:  # fmt: skip
    """A promised callback that is overdue: to whom, their phone, when it was due, who owns it."""
    now = now or utcnow()
    level = level or max(1, callback.escalations)
    code, zone, timezone = _zone(config, subscriber.region if subscriber else None,
                                 *(incident.regions if incident else []))  # fmt: skip
    label = zone_label(timezone, locale)
    phone = call.caller_phone or (subscriber.phone if subscriber else "") or ""
    person = {
        "known": subscriber is not None,
        "name": subscriber.name if subscriber else "",
        "account": (subscriber.external_id or "") if subscriber else "",
        "email": (subscriber.email or "") if subscriber else "",
        "phone": display_phone(phone),
        "region_name": config.regions[code].name.get(locale) if code else "",
    }
    return {
        **_common(config, locale),
        "level": level,
        "incident": _incident(config, incident, locale) if incident else None,
        "subscriber": person,
        "callback": {
            "id": callback.id,
            "owner": callback.owner,
            "due": moment(callback.due_at, zone, label, locale),
            "overdue_by": format_duration(now - callback.due_at, locale),
            "promised": moment(callback.created_at, zone, label, locale),
        },
        "call": {
            "note": call.note,
            "taken_by": call.taken_by,
            "time": moment(call.created_at, zone, label, locale),
        },
        "command": f"notifier callbacks done {callback.id} --outcome …",
    }


_KIND_LABELS = {
    "ru": {"status": "уведомление о статусе", "apology": "письмо с извинением", "hotline": "объявление горячей линии",
           "reminder": "напоминание дежурному", "escalation": "эскалация обратного звонка",
           "paused": "заметка о приостановке", "over_budget": "заметка о превышении лимита SMS"},
    "en": {"status": "status notice", "apology": "apology", "hotline": "hotline announcement",
           "reminder": "on-call reminder", "escalation": "callback escalation", "paused": "pause note",
           "over_budget": "SMS budget note"},
}  # fmt: skip


def paused_context(config: Config, *, pause: MailingPause, waiting: int, locale: str) -> dict[str, Any]:
    """A mailing that waits for a template fix: which template, why, since when, how many wait."""
    utc = ZoneInfo("UTC")
    return {
        **_common(config, locale),
        "pause": {
            "template": pause.problem.split(": ", 1)[0],
            "problem": pause.problem,
            "kind": pause.kind,
            "kind_label": _KIND_LABELS[locale].get(pause.kind, pause.kind),
            "channel": pause.channel,
            "locale": pause.locale,
            "since": moment(pause.since, utc, "UTC", locale),
        },
        "waiting": waiting,
        "command": "notifier templates check",
    }


def over_budget_context(config: Config, *, incident: Incident, mailing: str, held: int, locale: str) -> dict[str, Any]:
    """An SMS mailing held because it is larger than ``[sms].max_messages_per_mailing``."""
    return {
        **_common(config, locale),
        "incident": _incident(config, incident, locale),
        "mailing": mailing,
        "mailing_label": _KIND_LABELS[locale].get(mailing, mailing),
        "held": held,
        "budget": config.sms.max_messages_per_mailing,
        "command": f"notifier sms release {incident.ref} --kind {mailing}",
    }


def samples(config: Config, kind: str, locale: str) -> list[dict[str, Any]]:
    """Contexts for ``templates check``: every optional part present and absent."""
    if kind == "over_budget":
        return [over_budget_context(config, incident=sample_incident(config), mailing="apology", held=61234,
                                    locale=locale)]  # fmt: skip
    if kind == "paused":
        pause = MailingPause(id=3, kind="status", channel="email", locale="ru", templates_digest="0",
                             problem="templates/email/status/ru/body.txt:3: 'dict object' has no attribute 'titel'",
                             since=datetime(2026, 11, 23, 7, 40, tzinfo=UTC))  # fmt: skip
        return [paused_context(config, pause=pause, waiting=1234, locale=locale)]
    open_ = sample_incident(config, resolved=False)
    now = open_.started_at + timedelta(hours=3, minutes=15)
    if kind == "reminder":
        bare = Update(id=1, incident_id=open_.id or 0, kind="declared", status="investigating", message="",
                      created_at=open_.declared_at)  # fmt: skip
        return [
            reminder_context(config, incident=open_, update=sample_update(open_), locale=locale, now=now),
            reminder_context(config, incident=open_, update=bare, locale=locale, now=now),
            reminder_context(config, incident=open_, update=None, locale=locale, now=now),
        ]
    call = Call(id=5, subscriber_id=1, caller_phone="+79120000123", incident_id=open_.id, taken_by="petrova",
                note="Не уходит декларация, просит перезвонить, когда заработает.",
                created_at=open_.started_at + timedelta(hours=1))  # fmt: skip
    callback = Callback(id=9, call_id=5, due_at=call.created_at + timedelta(hours=2), owner="petrova",
                        escalations=1, created_at=call.created_at)  # fmt: skip
    anonymous = Call(id=6, caller_phone="+74950000000", note="", taken_by="",
                     created_at=call.created_at)  # fmt: skip
    reader = sample_subscriber(config, locale=locale)
    return [
        escalation_context(config, incident=open_, callback=callback, call=call, subscriber=reader,
                           locale=locale, level=1, now=now),
        escalation_context(config, incident=None, callback=callback, call=anonymous, subscriber=None,
                           locale=locale, level=2, now=now),
    ]  # fmt: skip
