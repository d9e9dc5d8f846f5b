"""`notifier maintenance …` and `notifier subscribers stats` driven as a user would."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from notifier import subscriptions
from notifier.db import write_session
from notifier.models import utcnow


def _later(days: float) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).replace(microsecond=0).isoformat()


def test_schedule_list_show_reschedule_cancel(cli: Any, make_subscriber: Any) -> None:
    make_subscriber(region="66")
    make_subscriber(region="54")
    result = cli("maintenance", "schedule", "--title", "Обновление БД", "--region", "66", "--starts", _later(3),
                 "--ends", _later(3.1), "--json")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    data = result.json()
    assert data["id"] == "MNT-1" and data["affected"] == 1 and data["queued"]["maintenance"] == 1
    assert data["queued"]["maintenance_reminder"] == 3  # 24 h, 1 h and the started notice
    listed = cli("maintenance", "list")
    assert "MNT-1  scheduled" in listed.stdout and "Обновление БД" in listed.stdout
    shown = cli("maintenance", "show", "MNT-1", "--json").json()
    assert shown["audience"] == 1 and shown["messages"]["maintenance"] == {"queued": 1}
    moved = cli("maintenance", "reschedule", "MNT-1", "--starts", _later(5), "--ends", _later(5.1))
    assert moved.exit_code == 0 and "3 unsent cancelled" in moved.stdout
    assert cli("maintenance", "cancel", "MNT-1").exit_code == 0
    again = cli("maintenance", "cancel", "MNT-1")
    assert again.exit_code != 0 and "MNT-1 is cancelled" in again.stderr


def test_schedule_takes_the_english_texts(cli: Any, engine: Any, make_subscriber: Any) -> None:
    from sqlmodel import select

    from notifier.db import read_session
    from notifier.models import Maintenance

    make_subscriber(region="66", locale="en")
    result = cli("maintenance", "schedule", "--title", "Обновление БД", "--title-en", "Database upgrade",
                 "--message-en", "Reports wait until it is done.", "--region", "66", "--starts", _later(3),
                 "--ends", _later(3.1))  # fmt: skip
    assert result.exit_code == 0, result.stderr
    with read_session(engine) as session:
        (item,) = session.exec(select(Maintenance)).all()
    assert item.translations == {"en": {"title": "Database upgrade", "message": "Reports wait until it is done."}}
    bidi = cli("maintenance", "schedule", "--title", "T", "--title-en", "fdp.exe\u202egnp", "--region", "66",
               "--starts", _later(3), "--ends", _later(3.1))  # fmt: skip
    assert bidi.exit_code == 2 and bidi.stderr.startswith("error: --title-en"), bidi.stderr
    assert len(bidi.stderr.strip().splitlines()) == 1


def test_bad_input_is_one_line(cli: Any) -> None:
    cases = [
        (["--region", "66", "--starts", "tomorrow", "--ends", _later(1)], "--starts: 'tomorrow' is not an ISO 8601"),
        (["--region", "66", "--starts", _later(2), "--ends", _later(1)], "--ends must be after --starts"),
        (["--region", "99x", "--starts", _later(1), "--ends", _later(2)], "unknown region '99x'"),
        (["--region", "66", "--starts", _later(-1), "--ends", _later(1)], "--starts is in the past"),
    ]
    for args, message in cases:
        result = cli("maintenance", "schedule", "--title", "T", *args)
        assert result.exit_code == 2, result.stdout
        assert message in result.stderr and "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    missing = cli("maintenance", "show", "MNT-9")
    assert missing.exit_code == 1 and "No maintenance by the id of 'MNT-9'" in missing.stderr


def test_self_subscribed_are_marked_and_stats_count_gained_and_lost(cli: Any, engine: Any, config: Any,
                                                                    make_subscriber: Any) -> None:  # fmt: skip
    make_subscriber(region="66", email="imported@example.org")
    with write_session(engine) as session:
        subscriptions.request_subscription(session, config, "self@example.org",
                                           subscriptions.Choice("66", ("tax-reporting",), "en"))  # fmt: skip
    from sqlmodel import select

    from notifier.models import Subscriber

    with write_session(engine) as session:
        pending = session.exec(select(Subscriber).where(Subscriber.email == "self@example.org")).one()
        token = subscriptions.confirm_token(config.secret(), pending, utcnow() + timedelta(hours=1))
        assert subscriptions.confirm(session, config.secret(), token) is not None
        subscriptions.unsubscribe_everything(session, pending.id)  # type: ignore[arg-type]
    listed = cli("subscribers", "list").stdout.splitlines()
    assert [line for line in listed if "self-subscribed" in line] == [next(line for line in listed if "self@" in line)]
    weeks = cli("subscribers", "stats", "--weeks", "2", "--json").json()["weeks"]
    assert len(weeks) == 2 and weeks[-1]["gained"] == 2 and weeks[-1]["lost"] == 1
    assert cli("subscribers", "stats", "--weeks", "0").exit_code == 2


def test_a_one_click_unsubscribe_counts_as_lost_in_the_stats(cli: Any, engine: Any, config: Any,
                                                             make_subscriber: Any) -> None:  # fmt: skip
    """The RFC 8058 one-click button of a letter is a way out too: `subscribers stats` counts it."""
    import httpx

    from notifier import tokens
    from notifier.web import create_app
    from tests.web_server import running

    leaving = make_subscriber(region="66")
    before = cli("subscribers", "stats", "--weeks", "1", "--json").json()["weeks"][-1]["lost"]
    token = tokens.make_token(config.secret(), leaving.id)
    with running(create_app(config, engine)) as url:
        for _ in range(2):  # pressed twice: left once
            answer = httpx.post(f"{url}/unsubscribe/{token}", data={"List-Unsubscribe": "One-Click"}, trust_env=False)
            assert answer.status_code == 200
    after = cli("subscribers", "stats", "--weeks", "1", "--json").json()["weeks"][-1]["lost"]
    assert after - before == 1


def test_report_of_a_planned_maintenance_counts_its_announcement_and_reminders(cli: Any, make_subscriber: Any) -> None:
    make_subscriber(region="66")
    assert cli("maintenance", "schedule", "--title", "Обновление БД", "--region", "66", "--starts", _later(3),
               "--ends", _later(3.1)).exit_code == 0  # fmt: skip
    report = cli("report", "MNT-1", "--json").json()
    assert report["audience"] == 1
    assert report["messages"]["maintenance"] == {"queued": 1}  # the announcement, at once
    assert set(report["messages"]) >= {"maintenance", "maintenance_reminder"}
    text = cli("report", "MNT-1").stdout
    assert "MNT-1" in text and "maintenance_reminder" in text
