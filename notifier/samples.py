"""Sample data for checking templates and previewing letters: a realistic incident, update and
subscriber in the config's own regions and services (the Kontur case of SPEC.md).

Owns only building these values; it is shared by ``rendering`` (``templates check``),
``staff_notices`` (their samples) and ``preview`` of a subscriber who is not in the audience.
Nothing here touches the database.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from notifier.config import Config
from notifier.models import Incident, Subscriber, Update


def sample_incident(config: Config, *, resolved: bool = True, **fields: Any) -> Incident:
    """A realistic incident in the config's own regions and services, for check and preview."""
    regions = [code for code in config.regions if config.regions[code].timezone == "Asia/Yekaterinburg"][:2]
    regions = regions or list(config.regions)[:2]
    started = datetime(2026, 11, 23, 5, 5, tzinfo=UTC)
    values: dict[str, Any] = {
        "id": 42, "title": "Не отправляются отчёты в ФНС", "severity": "major",
        "status": "resolved" if resolved else "identified", "regions": regions,
        "services": list(config.services)[:1], "started_at": started,
        "declared_at": started + timedelta(minutes=12), "updated_at": started + timedelta(hours=5, minutes=8),
        "resolved_at": started + timedelta(hours=5, minutes=7) if resolved else None,
        "cause": ("Отказал основной сервер базы данных, а автоматическое переключение на резервный "
                  "не сработало из-за ошибки в его настройке."),
        "measures": ("Мы вручную переключили работу на резервный сервер и проверили, что все отчёты, "
                     "отправленные во время сбоя, дошли до адресатов.\nОшибку в настройке исправили, "
                     "а переключение теперь проверяем учениями каждый месяц."),
        "compensation_days": 14 if resolved else None,
    }  # fmt: skip
    values.update(fields)
    return Incident(**values)


def sample_update(incident: Incident) -> Update:
    return Update(
        id=7, incident_id=incident.id or 0, kind="update", status=incident.status,
        message="Причина найдена: отказал сервер базы данных. Переключаем работу на резервный, "
        "ориентировочно до 16:00 по времени Екатеринбурга.",
        created_at=incident.started_at + timedelta(hours=2, minutes=30),
    )  # fmt: skip


def sample_subscriber(
    config: Config, *, region: str | None = None, locale: str = "ru", **fields: Any
) -> Subscriber:
    """A subscriber in ``region`` (default: the sample incident's first region)."""
    region = region or sample_incident(config).regions[0]
    values: dict[str, Any] = {
        "id": 1, "external_id": "ACC-000123", "name": "Ирина Петрова" if locale == "ru" else "Irina Petrova",
        "email": "irina.petrova@example.org", "phone": "+79120000123", "region": region, "locale": locale,
        "services": ";" + ";".join(list(config.services)[:1]) + ";",
    }  # fmt: skip
    services = fields.pop("services", None)
    if services is not None:
        values["services"] = ";" + ";".join(services) + ";" if services else ""
    values.update(fields)
    return Subscriber(**values)
