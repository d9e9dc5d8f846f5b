"""What the letters about planned work say: template contexts, samples and the ``.ics`` attachment.

Owns the variables ``templates/email/maintenance*/…`` and ``templates/internal/maintenance_overrun``
see (documented in templates/README.md): the maintenance with its times in the reader's own
region's zone (``moment``/``period_text`` from ``wording``), the lead time of a reminder, the
times before a reschedule or an extension, the links (status page, ``.ics``, preferences).
``rendering`` calls it for the maintenance kinds; it neither loads nor sends anything.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from notifier import languages
from notifier.composing import Attachment
from notifier.config import Config
from notifier.models import Maintenance, Subscriber
from notifier.outbox.planned import NOTICES, OVERRUN, PLANNED_KINDS
from notifier.samples import sample_subscriber
from notifier.wording import format_duration, moment, period_text, ru_plural, services_phrase, zone_label

__all__ = ["ICS_KINDS", "KINDS", "attachments", "context", "samples"]

KINDS: tuple[str, ...] = (*PLANNED_KINDS, OVERRUN)
ICS_KINDS = ("maintenance", "maintenance_rescheduled", "maintenance_extended", "maintenance_cancelled")
assert set(NOTICES) <= set(KINDS)


def lead_text(lead: timedelta, locale: str) -> str:
    """``24 часа`` / ``24 hours``, ``1 час`` / ``1 hour`` (whole hours; anything else as a duration)."""
    hours, rest = divmod(int(lead.total_seconds()), 3600)
    if rest or not hours:
        return format_duration(lead, locale)
    if locale == "ru":
        return f"{hours} {ru_plural(hours, 'час', 'часа', 'часов')}"
    return f"{hours} hour{'s' if hours != 1 else ''}"


def _region(config: Config, subscriber: Subscriber | None, maintenance: Maintenance) -> str:
    for code in (subscriber.region if subscriber else None, *maintenance.regions):
        if code in config.regions:
            return code
    return next(iter(config.regions))


def ics_url(config: Config, maintenance: Maintenance, region: str | None = None) -> str:
    base = f"{config.notifier.public_base_url.rstrip('/')}/maintenance/{maintenance.id}.ics"
    return f"{base}?region={region}" if region else base


def _maintenance(config: Config, maintenance: Maintenance, region: str, locale: str) -> dict[str, Any]:
    area = config.regions[region]
    zone, label = area.zone, zone_label(area.timezone, locale)
    starts, ends = moment(maintenance.starts_at, zone, label, locale), moment(maintenance.ends_at, zone, label, locale)
    duration = format_duration(maintenance.ends_at - maintenance.starts_at, locale)
    regions = [config.regions[c].name.get(locale) if c in config.regions else c for c in maintenance.regions]
    services = [config.services[c].name.get(locale) if c in config.services else c for c in maintenance.services]
    before = None
    if maintenance.previous_starts_at and maintenance.previous_ends_at:
        old_start = moment(maintenance.previous_starts_at, zone, label, locale)
        old_end = moment(maintenance.previous_ends_at, zone, label, locale)
        old_duration = format_duration(maintenance.previous_ends_at - maintenance.previous_starts_at, locale)
        before = {"starts": old_start, "ends": old_end,
                  "period": period_text(old_start, old_end, label, old_duration, locale)}  # fmt: skip
    return {
        "ref": maintenance.ref, "title": languages.text(maintenance, "title", locale),
        "message": languages.text(maintenance, "message", locale),
        "regions": regions, "regions_text": ", ".join(regions), "services": services,
        "services_phrase": services_phrase(services, locale), "starts": starts, "ends": ends,
        "duration": duration, "period": period_text(starts, ends, label, duration, locale),
        "starts_utc": f"{maintenance.starts_at.astimezone(UTC):%Y-%m-%d %H:%M}",
        "ends_utc": f"{maintenance.ends_at.astimezone(UTC):%Y-%m-%d %H:%M}",
        "before": before, "announced": moment(maintenance.announced_at, zone, label, locale),
        "previous_end": moment(maintenance.previous_ends_at, zone, label, locale) if maintenance.previous_ends_at
        else None,
        "ics_url": ics_url(config, maintenance, region),
    }  # fmt: skip


def context(
    config: Config, kind: str, *, maintenance: Maintenance | None, locale: str, subscriber: Subscriber | None,
    unsubscribe_url: str = "", preferences_url: str = "", lead: timedelta | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:  # fmt: skip
    """The variables a maintenance template of ``kind`` sees."""
    if maintenance is None:
        raise ValueError(f"a {kind} message is about a maintenance; none was given")
    region = _region(config, subscriber, maintenance)
    area = config.regions[region]
    ctx: dict[str, Any] = {
        "locale": locale, "company": config.notifier.company.get(locale),
        "hotline_phone": config.notifier.hotline_phone, "support_email": config.notifier.support_email,
        "status_page_url": config.notifier.public_base_url.rstrip("/") + "/",
        "maintenance": _maintenance(config, maintenance, region, locale),
        "reader": {"name": subscriber.name if subscriber else "", "region_name": area.name.get(locale),
                   "zone_label": zone_label(area.timezone, locale)},
        "lead": lead_text(lead, locale) if lead else "",
        "unsubscribe_url": unsubscribe_url, "preferences_url": preferences_url,
    }  # fmt: skip
    if kind == OVERRUN:
        overdue = (now or datetime.now(UTC)) - maintenance.ends_at
        ctx["overdue"] = format_duration(max(overdue, timedelta(0)), locale)
        ctx["commands"] = [f"notifier maintenance complete {maintenance.ref}",
                           f"notifier maintenance extend {maintenance.ref} --ends …"]  # fmt: skip
    return ctx


def attachments(config: Config, kind: str, maintenance: Maintenance | None, subscriber: Subscriber | None,
                locale: str) -> tuple[Attachment, ...]:  # fmt: skip
    """The ``.ics`` an announcement (and a reschedule, extension or cancellation) carries."""
    if kind not in ICS_KINDS or maintenance is None:
        return ()
    region = _region(config, subscriber, maintenance)
    area = config.regions[region]
    from notifier.maintenance import calendar  # icalendar: only for the letters that carry an .ics

    data = calendar.ics(
        maintenance, domain=config.smtp.from_address.rpartition("@")[2] or "localhost",
        url=config.notifier.public_base_url.rstrip("/") + "/", company=config.notifier.company.get(locale),
        zone=area.zone, zone_label=zone_label(area.timezone, locale), locale=locale,
    )  # fmt: skip
    method = "CANCEL" if maintenance.status == "cancelled" else "PUBLISH"
    return (Attachment(calendar.filename(maintenance), f"{calendar.CONTENT_TYPE}; method={method}", data),)


def sample_maintenance(config: Config, **fields: Any) -> Maintenance:
    regions = [code for code in config.regions if config.regions[code].timezone == "Asia/Yekaterinburg"][:2]
    starts = datetime(2026, 12, 5, 20, 0, tzinfo=UTC)
    values: dict[str, Any] = {
        "id": 7, "title": "Обновление сервера базы данных", "regions": regions or list(config.regions)[:2],
        "message": "Отчёты можно будет подготовить, но отправятся они после окончания работ.",
        "services": list(config.services)[:1], "starts_at": starts, "ends_at": starts + timedelta(hours=3),
        "announced_at": starts - timedelta(days=3), "updated_at": starts - timedelta(days=3), "version": 1,
    }  # fmt: skip
    values.update(fields)
    return Maintenance(**values)


def samples(config: Config, kind: str, locale: str) -> list[dict[str, Any]]:
    """Contexts for ``templates check``: with and without a message, name, services, earlier times."""
    plain = sample_maintenance(config)
    bare = sample_maintenance(config, message="", services=[])
    moved = sample_maintenance(config, previous_starts_at=plain.starts_at - timedelta(days=1),
                               previous_ends_at=plain.ends_at - timedelta(days=1, hours=1), version=2)  # fmt: skip
    reader = sample_subscriber(config, locale=locale)
    nameless = sample_subscriber(config, locale=locale, name="", services=[])
    url = config.notifier.public_base_url + "/unsubscribe/sample-token"
    prefs = config.notifier.public_base_url + "/preferences/sample-token"
    lead = timedelta(hours=24) if kind == "maintenance_reminder" else None
    if kind == OVERRUN:
        return [context(config, kind, maintenance=m, locale=locale, subscriber=None,
                        now=plain.ends_at + timedelta(minutes=45)) for m in (plain, bare)]  # fmt: skip
    return [
        context(config, kind, maintenance=plain, locale=locale, subscriber=reader, unsubscribe_url=url,
                preferences_url=prefs, lead=lead),
        context(config, kind, maintenance=moved, locale=locale, subscriber=nameless, unsubscribe_url=url,
                preferences_url=prefs, lead=lead),
        context(config, kind, maintenance=bare, locale=locale, subscriber=None, lead=lead),
    ]  # fmt: skip


def zone_of(config: Config, region: str | None) -> ZoneInfo:
    return config.regions[region].zone if region in config.regions else ZoneInfo("UTC")
