"""Planned work on the web, over real HTTP: the status page lists upcoming and in-progress
maintenance per region, the .ics parses with icalendar with the right UTC times, and the
scheduled-maintenance documents carry Statuspage's keys and vocabularies."""

from __future__ import annotations

import email
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email import policy
from typing import Any

import httpx
import icalendar
import pytest

from notifier import maintenance
from notifier.db import write_session
from notifier.models import Maintenance, Subscriber
from notifier.rendering import Renderer
from notifier.web import create_app
from tests.web_server import running

NOW = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)
# Statuspage's documented keys of a scheduled maintenance and of the page object.
MAINTENANCE_KEYS = {"id", "name", "status", "created_at", "updated_at", "monitoring_at", "resolved_at", "impact",
                    "shortlink", "started_at", "page_id", "incident_updates", "components", "scheduled_for",
                    "scheduled_until"}  # fmt: skip
UPDATE_KEYS = {"id", "status", "body", "incident_id", "created_at", "updated_at", "display_at", "affected_components"}
PAGE_KEYS = {"id", "name", "url", "time_zone", "updated_at"}


@pytest.fixture
def web(config: Any, engine: Any) -> Iterator[httpx.Client]:
    app = create_app(config, engine, clock=lambda: NOW + timedelta(hours=30))
    with running(app) as url, httpx.Client(base_url=url, timeout=20) as client:
        yield client


def _plan(engine: Any, config: Any, title: str, regions: list[str], starts: datetime, hours: int = 2) -> Maintenance:
    with write_session(engine) as session:
        return maintenance.schedule(session, config, title=title, regions=regions, services=["tax-reporting"],
                                    starts_at=starts, ends_at=starts + timedelta(hours=hours),
                                    message="Отчёты уйдут после работ.", now=NOW).maintenance  # fmt: skip


@pytest.fixture
def planned(engine: Any, config: Any) -> dict[str, Maintenance]:
    return {
        "upcoming": _plan(engine, config, "Обновление сервера БД", ["66"], NOW + timedelta(days=3)),
        "active": _plan(engine, config, "Замена дисков", ["54"], NOW + timedelta(hours=29)),
        "done": _plan(engine, config, "Перенос стойки", ["77"], NOW + timedelta(hours=1)),
        "cancelled": _plan(engine, config, "Отменённые работы", ["66"], NOW + timedelta(days=5)),
    }


def test_status_page_shows_upcoming_and_in_progress_work_per_region(
    web: httpx.Client, planned: dict[str, Maintenance], engine: Any, config: Any
) -> None:
    with write_session(engine) as session:
        maintenance.complete(session, config, planned["done"].id, now=NOW + timedelta(hours=2))  # type: ignore[arg-type]
        maintenance.cancel(session, config, planned["cancelled"].id, now=NOW)  # type: ignore[arg-type]
    page = web.get("/").text
    assert "Обновление сервера БД" in page and "Замена дисков" in page
    assert "Перенос стойки" not in page and "Отменённые работы" not in page
    assert "запланированы" in page and "идут сейчас" in page
    assert "4 марта 2027\xa0г., 14:00 по времени Екатеринбурга" in page  # 09:00 UTC in Yekaterinburg
    assert f'href="/maintenance/{planned["upcoming"].id}.ics?region=66"' in page
    only = web.get("/", params={"region": "54"}).text
    assert "Замена дисков" in only and "Обновление сервера БД" not in only
    english = web.get("/", params={"locale": "en"}).text
    assert "in progress now" in english and ">in_progress<" not in english


def test_ics_parses_with_icalendar_and_has_the_utc_times(web: httpx.Client, planned: dict[str, Maintenance]) -> None:
    item = planned["upcoming"]
    response = web.get(f"/maintenance/{item.id}.ics", params={"region": "66"})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/calendar")
    assert 'filename="maintenance-' in response.headers["content-disposition"]
    event = next(iter(icalendar.Calendar.from_ical(response.content).walk("VEVENT")))
    assert event.decoded("dtstart") == NOW + timedelta(days=3)
    assert event.decoded("dtend") == NOW + timedelta(days=3, hours=2)
    assert event.decoded("dtstart").utcoffset() == timedelta(0)
    assert "14:00 – 2027-03-04 16:00 по времени Екатеринбурга" in str(event["description"])
    assert str(event["uid"]).startswith(f"maintenance-{item.id}@") and event["sequence"] == 1
    assert web.get("/maintenance/999.ics").status_code == 404
    assert web.get(f"/maintenance/{item.id}.ics", params={"region": "nowhere"}).status_code == 400


def test_rescheduled_ics_moves_the_event(engine: Any, config: Any, web: httpx.Client, planned: dict[str, Maintenance]) -> None:
    item = planned["upcoming"]
    later = NOW + timedelta(days=10)
    with write_session(engine) as session:
        maintenance.reschedule(session, config, item.id, starts_at=later, ends_at=later + timedelta(hours=1), now=NOW)  # type: ignore[arg-type]
    event = next(iter(icalendar.Calendar.from_ical(web.get(f"/maintenance/{item.id}.ics").content).walk("VEVENT")))
    assert event.decoded("dtstart") == later and event["sequence"] == 2


def test_announcement_renders_with_the_ics_attached(engine: Any, config: Any, planned: dict[str, Maintenance]) -> None:
    item = planned["upcoming"]
    reader = Subscriber(id=5, name="Irina", email="irina@example.org", region="66", locale="en")
    rendered = Renderer(config).render("maintenance", incident=None, locale="en", subscriber=reader, maintenance=item)
    assert rendered.subject == "Planned work on March 4: Обновление сервера БД"
    assert "When: on March 4, 2027, from 14:00 to 16:00 Yekaterinburg time (2 h)" in rendered.text
    assert "In UTC: 2027-03-04 09:00 – 2027-03-04 11:00" in rendered.text
    assert "/preferences/5." in rendered.text
    (attachment,) = rendered.attachments
    assert attachment.content_type == "text/calendar; method=PUBLISH"
    event = next(iter(icalendar.Calendar.from_ical(attachment.data).walk("VEVENT")))
    assert event.decoded("dtstart") == NOW + timedelta(days=3)


def test_scheduled_maintenance_documents_have_statuspage_keys(
    web: httpx.Client, planned: dict[str, Maintenance], engine: Any, config: Any
) -> None:
    with write_session(engine) as session:
        maintenance.complete(session, config, planned["done"].id, now=NOW + timedelta(hours=2))  # type: ignore[arg-type]
        maintenance.cancel(session, config, planned["cancelled"].id, now=NOW)  # type: ignore[arg-type]
    every = web.get("/api/v2/scheduled-maintenances.json").json()
    assert set(every) == {"page", "scheduled_maintenances"} and set(every["page"]) >= PAGE_KEYS
    by_name = {m["name"]: m for m in every["scheduled_maintenances"]}
    assert set(by_name) == {"Обновление сервера БД", "Замена дисков", "Перенос стойки"}  # never the cancelled one
    for item in by_name.values():
        assert set(item) >= MAINTENANCE_KEYS and item["impact"] == "maintenance"
        assert item["status"] in {"scheduled", "in_progress", "verifying", "completed"}
        assert all(set(u) >= UPDATE_KEYS for u in item["incident_updates"])
        assert all({"id", "name", "status"} <= set(c) for c in item["components"])
    assert by_name["Обновление сервера БД"]["scheduled_for"] == "2027-03-04T09:00:00.000Z"
    assert by_name["Обновление сервера БД"]["scheduled_until"] == "2027-03-04T11:00:00.000Z"
    assert by_name["Перенос стойки"]["status"] == "completed" and by_name["Перенос стойки"]["resolved_at"]
    upcoming = web.get("/api/v2/scheduled-maintenances/upcoming.json").json()["scheduled_maintenances"]
    active = web.get("/api/v2/scheduled-maintenances/active.json").json()["scheduled_maintenances"]
    assert [m["name"] for m in upcoming] == ["Обновление сервера БД"] and upcoming[0]["started_at"] is None
    assert [m["name"] for m in active] == ["Замена дисков"] and active[0]["status"] == "in_progress"
    assert active[0]["components"][0]["status"] == "under_maintenance"


def test_parse_back_of_the_composed_announcement(config: Any, planned: dict[str, Maintenance]) -> None:
    """The composer's mixed message as a mail client reads it: the .ics is an attachment."""
    from notifier.composing import Composer

    rendered = Renderer(config).render("maintenance", incident=None, locale="ru", maintenance=planned["upcoming"],
                                       subscriber=Subscriber(id=3, name="", email="a@example.org", region="66"))  # fmt: skip
    raw = Composer("noreply@example.org").compose(
        message_id="<notifier.1.0@example.org>", to_name="", to_address="a@example.org", subject=rendered.subject,
        text=rendered.text, html=rendered.html, date=NOW, unsubscribe_url=None, attachments=rendered.attachments,
    )  # fmt: skip
    parsed = email.message_from_bytes(raw, policy=policy.default)
    (ics,) = list(parsed.iter_attachments())
    assert ics.get_filename() == f"maintenance-{planned['upcoming'].id}.ics"
    assert icalendar.Calendar.from_ical(ics.get_content()).walk("VEVENT")[0].decoded("dtstart") == NOW + timedelta(days=3)


def test_the_summary_lists_upcoming_and_in_progress_maintenance(
    web: httpx.Client, planned: dict[str, Maintenance], engine: Any, config: Any
) -> None:
    """Statuspage's summary.json carries the scheduled maintenances too (not an empty list)."""
    summary = web.get("/api/v2/summary.json").json()
    names = {m["name"] for m in summary["scheduled_maintenances"]}
    assert {"Обновление сервера БД", "Замена дисков"} <= names
    assert all(set(m) >= MAINTENANCE_KEYS for m in summary["scheduled_maintenances"])
    assert all(m["status"] in {"scheduled", "in_progress"} for m in summary["scheduled_maintenances"])


def test_preference_and_confirmation_pages_are_never_cached(web: httpx.Client) -> None:
    for path in ("/preferences/1.bogus", "/subscribe/confirm/bogus"):
        assert web.get(path).headers.get("Cache-Control") == "no-store", path
