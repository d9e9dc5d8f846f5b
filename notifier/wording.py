"""Localised words, dates and durations for people: the pieces templates and pages are written with.

Owns Russian plurals, the compensation phrase, durations (``5 ч 7 мин``), the name of a
region's time (``по времени Екатеринбурга``, with the cities of Russia's zones in the
genitive), dates and times in a reader's zone (Babel), the span of an incident and the phrase
naming the services concerned, in each supported language. Plain functions of plain values:
no Jinja, no templates, no database; ``rendering`` builds the template context from them and
the web pages and staff notices reuse them.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel.dates import format_date, format_time, get_timezone_location

# Russian zones (and a few neighbours): the city's name in the genitive, and in English.
_ZONE_CITIES = {
    "Europe/Kaliningrad": ("Калининграда", "Kaliningrad"), "Europe/Samara": ("Самары", "Samara"),
    "Europe/Volgograd": ("Волгограда", "Volgograd"), "Europe/Saratov": ("Саратова", "Saratov"),
    "Europe/Ulyanovsk": ("Ульяновска", "Ulyanovsk"), "Europe/Astrakhan": ("Астрахани", "Astrakhan"),
    "Europe/Kirov": ("Кирова", "Kirov"), "Europe/Simferopol": ("Симферополя", "Simferopol"),
    "Asia/Yekaterinburg": ("Екатеринбурга", "Yekaterinburg"), "Asia/Omsk": ("Омска", "Omsk"),
    "Asia/Novosibirsk": ("Новосибирска", "Novosibirsk"), "Asia/Barnaul": ("Барнаула", "Barnaul"),
    "Asia/Tomsk": ("Томска", "Tomsk"), "Asia/Novokuznetsk": ("Новокузнецка", "Novokuznetsk"),
    "Asia/Krasnoyarsk": ("Красноярска", "Krasnoyarsk"), "Asia/Irkutsk": ("Иркутска", "Irkutsk"),
    "Asia/Chita": ("Читы", "Chita"), "Asia/Yakutsk": ("Якутска", "Yakutsk"),
    "Asia/Vladivostok": ("Владивостока", "Vladivostok"), "Asia/Sakhalin": ("Сахалина", "Sakhalin"),
    "Asia/Magadan": ("Магадана", "Magadan"), "Asia/Srednekolymsk": ("Среднеколымска", "Srednekolymsk"),
    "Asia/Kamchatka": ("Камчатки", "Kamchatka"), "Asia/Anadyr": ("Анадыря", "Anadyr"),
    "Europe/Minsk": ("Минска", "Minsk"), "Asia/Almaty": ("Алматы", "Almaty"),
    "Europe/Berlin": ("Берлина", "Berlin"), "Europe/London": ("Лондона", "London"),
    "America/New_York": ("Нью-Йорка", "New York"),
}  # fmt: skip


# The one table of what an incident's status is called, for people.
STATUS_LABELS = {
    "ru": {"investigating": "Выясняем причину", "identified": "Причина найдена, устраняем",
           "monitoring": "Работа восстановлена, следим за стабильностью", "resolved": "Сбой устранён"},
    "en": {"investigating": "Investigating", "identified": "Cause identified, fixing",
           "monitoring": "Service restored, monitoring", "resolved": "Resolved"},
}  # fmt: skip


def status_label(status: str, locale: str, *, sentence: bool = True) -> str:
    """``Выясняем причину``; with ``sentence=False`` lower-cased for use inside a sentence."""
    label = STATUS_LABELS.get(locale, STATUS_LABELS["en"]).get(status, status)
    return label if sentence else label[:1].lower() + label[1:]


def ru_plural(n: int, one: str, few: str, many: str) -> str:
    """The Russian form for ``n``: 1 день, 3 дня, 14 дней, 21 день, 111 дней."""
    n = abs(n)
    if n % 10 == 1 and n % 100 != 11:
        return one
    if 2 <= n % 10 <= 4 and not 12 <= n % 100 <= 14:
        return few
    return many


def compensation_text(days: int | None, locale: str) -> str:
    """``14 дней бесплатного обслуживания`` / ``14 days of free service``; "" for none."""
    if not days:
        return ""
    if locale == "ru":
        return f"{days} {ru_plural(days, 'день', 'дня', 'дней')} бесплатного обслуживания"
    return f"{days} day{'s' if days != 1 else ''} of free service"


def format_duration(delta: timedelta, locale: str) -> str:
    """``5 ч 7 мин`` / ``5 h 7 min`` (whole minutes; no zero parts; days above 24 h)."""
    minutes = max(0, round(delta.total_seconds() / 60))
    if minutes == 0:
        return "меньше минуты" if locale == "ru" else "less than a minute"
    days, rest = divmod(minutes, 1440)
    units = ("дн.", "ч", "мин") if locale == "ru" else ("d", "h", "min")
    return " ".join(f"{n} {unit}" for n, unit in zip((days, *divmod(rest, 60)), units, strict=True) if n)


def zone_label(timezone: str, locale: str) -> str:
    """``по времени Екатеринбурга`` / ``Yekaterinburg time``."""
    if timezone == "Europe/Moscow":
        return "по московскому времени" if locale == "ru" else "Moscow time"
    if timezone in {"UTC", "Etc/UTC"}:
        return "по UTC" if locale == "ru" else "UTC"
    if timezone in _ZONE_CITIES:
        ru, en = _ZONE_CITIES[timezone]
        return f"по времени {ru}" if locale == "ru" else f"{en} time"
    try:
        city = get_timezone_location(ZoneInfo(timezone), locale=locale, return_city=True)
    except Exception:  # an exotic zone Babel does not know: its id is still exact
        city = timezone
    return f"по местному времени ({city})" if locale == "ru" else f"{city} time"


def operator_zone(name: str = "") -> tzinfo:
    """The zone staff read times in: ``name`` (``[notifier].operator_timezone``), else this
    machine's (``TZ``, else ``/etc/localtime``), else UTC."""
    for candidate in (name, os.environ.get("TZ", "").lstrip(":")):
        if candidate:
            try:
                return ZoneInfo(candidate)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    try:
        link = os.path.realpath("/etc/localtime")
        return ZoneInfo(link.split("zoneinfo/", 1)[1])
    except (IndexError, ZoneInfoNotFoundError, ValueError, OSError):
        return datetime.now().astimezone().tzinfo or UTC


def _babel(text: str) -> str:
    return text.replace("\u202f", "\u00a0")  # narrow no-break space: missing from many mail fonts


def moment(at: datetime, zone: ZoneInfo, label: str, locale: str) -> dict[str, str]:
    """A moment as templates see it: ``.date``, ``.day``, ``.time``, ``.text``, ``.iso`` in ``zone``."""
    local = at.astimezone(zone)
    date = _babel(format_date(local.date(), "long", locale=locale))
    day = _babel(format_date(local.date(), "d MMMM" if locale == "ru" else "MMMM d", locale=locale))
    time = format_time(local, "HH:mm", tzinfo=zone, locale=locale)
    return {
        "date": date,
        "day": day,
        "time": time,
        "text": f"{date}, {time} {label}",
        "iso": local.isoformat(),
    }


def period_text(start: dict[str, str], end: dict[str, str], label: str, duration: str, locale: str) -> str:
    """``23 ноября 2026 г. с 10:05 до 15:12 по времени Екатеринбурга (5 ч 7 мин)``, both dates over midnight."""
    same_day = start["date"] == end["date"]
    same_year = start["iso"][:4] == end["iso"][:4]
    if locale == "ru":
        if same_day:
            return f"{start['date']} с {start['time']} до {end['time']} {label} ({duration})"
        first = start["day"] if same_year else start["date"]
        return f"с {start['time']} {first} до {end['time']} {end['date']} {label} ({duration})"
    if same_day:
        return f"on {start['date']}, from {start['time']} to {end['time']} {label} ({duration})"
    first = start["day"] if same_year else start["date"] + ","
    return f"from {start['time']} on {first} to {end['time']} on {end['date']}, {label} ({duration})"


def _join(names: list[str], locale: str) -> str:
    if len(names) <= 1:
        return "".join(names)
    return ", ".join(names[:-1]) + (" и " if locale == "ru" else " and ") + names[-1]


def services_phrase(names: list[str], locale: str) -> str:
    """``сервис «X»`` / ``сервисы «X» и «Y»`` / ``все наши сервисы``; ``the X service`` …"""
    if locale == "ru":
        if not names:
            return "все наши сервисы"
        quoted = _join([f"«{name}»" for name in names], locale)
        return ("сервис " if len(names) == 1 else "сервисы ") + quoted
    if not names:
        return "all our services"
    return f"the {_join(names, locale)} service" + ("s" if len(names) > 1 else "")
