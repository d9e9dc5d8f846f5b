"""Delivery reports and the described HTTP SMS API: a commercial gateway played by a real HTTP
server on 127.0.0.1 (its servers cannot run here), reports posted to the real web app under
uvicorn, and what each report does to the outbox (both databases)."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import httpx
import pytest
from sqlmodel import select

from notifier import incidents
from notifier.db import read_session, write_session
from notifier.delivery.sender import send_due
from notifier.delivery.sms import Kannel, report_token
from notifier.errors import DeliveryError
from notifier.models import Message, Subscriber, utcnow
from notifier.outbox import reports
from notifier.web import create_app
from tests.conftest import SECRET, mail_config
from tests.web_server import running
from tests.webhook_receiver import WebhookReceiver

TOKEN = "api-token-0123456789"


def api_config(tmp_path, config, smtp_server, api: WebhookReceiver, monkeypatch, web: str = "", **http):
    monkeypatch.setenv("TEST_SMS_TOKEN", TOKEN)
    section = {"url": api.url("/v1/messages"), "token_env": "TEST_SMS_TOKEN", "refused_codes": ["invalid_number"],
               "fields": {"to": "{to}", "text": "{text}", "from": "{sender}", "callback_url": "{report_url}",
                          "reference": "{id}", "encoding": "{coding}"}, **http}  # fmt: skip
    sms = {"gateway": "http", "sender": "Sfera", "quiet_hours": "", "rate_limit": 0, "status_notices": "all",
           "report_base_url": web or "http://127.0.0.1:9", "http": section}  # fmt: skip
    return mail_config(tmp_path / ("web" if not web else "sms"), config.notifier.database, smtp_server.port, sms=sms)


def sms_rows(engine) -> list[Message]:
    with read_session(engine) as session:
        return list(session.exec(select(Message).where(Message.channel == "sms").order_by(Message.id)).all())


@pytest.mark.parametrize(
    ("params", "outcome"),
    [
        ({"type": "1", "answer": ""}, "delivered"), ({"type": "8", "answer": "ACK/"}, "accepted"),
        ({"type": "4", "answer": ""}, "accepted"), ({"type": "16", "answer": "NACK/no SMSC"}, "refused"),
        ({"type": "16", "answer": "NACK/0x0000000b/Invalid Destination Address"}, "refused"),
        ({"type": "16", "answer": "NACK/0x00000058/Throttling error"}, "retry"),
        ({"type": "2", "answer": "id:1 sub:001 dlvrd:000 stat:EXPIRED err:000"}, "expired"),
        ({"type": "2", "answer": "id:1 sub:001 dlvrd:000 stat:UNDELIV err:001"}, "failed"),
        ({"type": "2", "answer": "id:1 sub:001 dlvrd:000 stat:REJECTD err:001"}, "refused"),
    ],
)  # fmt: skip
def test_kannel_report_types_and_answers(params: dict[str, str], outcome: str) -> None:
    report = Kannel.read(params)
    assert report.outcome == outcome
    assert report.code.startswith(params["type"])


def test_a_described_json_api_gets_each_sms_and_its_reports_are_recorded(
    engine, config, make_subscriber, smtp_server, tmp_path, monkeypatch
) -> None:
    with WebhookReceiver() as api:
        api.default = api.default.__class__(202, body=b'{"id": "msg-1", "status": "queued"}')
        served = api_config(tmp_path, config, smtp_server, api, monkeypatch)
        with running(create_app(served, engine)) as web:
            cfg = api_config(tmp_path, config, smtp_server, api, monkeypatch, web=web)
            fine = make_subscriber(region="66", email=None, phone="+79120001001")
            bad = make_subscriber(region="66", email=None, phone="+79120001002")
            with write_session(engine) as session:
                incidents.declare(session, cfg, title="Сбой", regions=["66"])
            assert asyncio.run(send_due(engine, cfg)).sent == 2
            sent = {r.json()["to"]: r for r in api.requests}
            assert set(sent) == {fine.phone, bad.phone}
            first = sent[fine.phone]
            assert first.headers["authorization"] == f"Bearer {TOKEN}"
            body = first.json()
            assert body["from"] == "Sfera" and body["encoding"] == "UCS-2" and "Сбой" in body["text"]
            assert body["callback_url"].startswith(web + "/sms/reports/")

            # The provider reports back as it documents: JSON with a status and an error code.
            delivered = httpx.post(body["callback_url"], json={"status": "delivered"})
            refused = httpx.post(sent[bad.phone].json()["callback_url"],
                                 json={"status": "failed", "error_code": "invalid_number"})  # fmt: skip
            assert delivered.status_code == 200 and delivered.json()["delivery"] == "delivered"
            assert refused.json()["number_refused"] is True
            forged = httpx.post(web + "/sms/reports/1.AAAAAAAAAAAAAAAAAAAAAA", json={"status": "delivered"})
            assert forged.status_code == 403
            nonsense = httpx.post(body["callback_url"], json={"no": "status"})
            assert nonsense.status_code == 400
    by_phone = {m.recipient: m for m in sms_rows(engine)}
    assert by_phone[fine.phone].delivery == "delivered"
    assert (by_phone[bad.phone].delivery, by_phone[bad.phone].delivery_code) == ("failed", "failed/invalid_number")
    with read_session(engine) as session:
        assert session.get(Subscriber, bad.id).phone_refused == bad.phone
        assert session.get(Subscriber, fine.id).phone_refused is None


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_an_api_refusing_our_token_stops_the_run(engine, config, make_subscriber, smtp_server, tmp_path,
                                                 monkeypatch) -> None:  # fmt: skip
    with WebhookReceiver() as api:
        api.default = api.default.__class__(401, body=b'{"error": "bad token"}')
        cfg = api_config(tmp_path, config, smtp_server, api, monkeypatch)
        make_subscriber(region="66", email=None)
        with write_session(engine) as session:
            incidents.declare(session, cfg, title="Сбой", regions=["66"])
        with pytest.raises(DeliveryError, match="refused our credentials"):
            asyncio.run(send_due(engine, cfg))
    assert {(m.state, m.attempts) for m in sms_rows(engine)} == {("retry", 0)}


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_gateway_that_is_down_is_retried_with_back_off(engine, config, make_subscriber, smtp_server, tmp_path,
                                                         monkeypatch) -> None:  # fmt: skip
    with WebhookReceiver() as api:
        api.answer(503, body=b"maintenance")
        cfg = api_config(tmp_path, config, smtp_server, api, monkeypatch)
        make_subscriber(region="66", email=None)
        with write_session(engine) as session:
            incidents.declare(session, cfg, title="Сбой", regions=["66"])
        report = asyncio.run(send_due(engine, cfg))
    assert report.sent == 1 and report.retried == 1  # the retry went out in the same run (no back-off here)
    assert len(api.requests) == 2


def test_a_late_intermediate_report_never_overrides_a_final_one(engine, config, make_subscriber) -> None:
    cfg = config.model_copy(update={"sms": config.sms.model_copy(update={"gateway": "kannel"})})
    reader = make_subscriber(region="66", email=None)
    with write_session(engine) as session:
        incidents.declare(session, cfg, title="Сбой", regions=["66"])
    (row,) = sms_rows(engine)
    with write_session(engine) as session:
        session.get(Message, row.id).state = "sent"
    now = utcnow()
    with write_session(engine) as session:
        reports.record(session, cfg, row.id, "delivered", "1", "", now)
    with write_session(engine) as session:
        after = reports.record(session, cfg, row.id, "accepted", "8/ACK/", "", now + timedelta(seconds=1))
    assert after.delivery == "delivered"
    with write_session(engine) as session:
        retried = reports.record(session, cfg, row.id, "retry", "16/NACK/0x58", "", now)
    assert not retried.retried and retried.delivery == "delivered"
    assert reader.phone == row.recipient


def test_an_smsc_refusing_for_now_sends_the_message_back_with_back_off(engine, config, make_subscriber) -> None:
    cfg = config.model_copy(update={"sms": config.sms.model_copy(update={"gateway": "kannel"})})
    make_subscriber(region="66", email=None)
    with write_session(engine) as session:
        incidents.declare(session, cfg, title="Сбой", regions=["66"])
    (row,) = sms_rows(engine)
    with write_session(engine) as session:
        message = session.get(Message, row.id)
        message.state, message.attempts = "sent", 1
    now = utcnow()
    with write_session(engine) as session:
        done = reports.record(session, cfg, row.id, "retry", "16/NACK/0x00000058/Throttling error", "", now)
    assert done.retried and done.state == "retry"
    (again,) = sms_rows(engine)
    assert again.not_before == now + cfg.mailing.retry_backoff and again.delivery is None


def test_report_tokens_name_one_message_and_are_not_unsubscribe_tokens() -> None:
    from notifier import tokens
    from notifier.delivery.sms import report_message_id

    token = report_token(SECRET.encode(), 42)
    assert report_message_id(SECRET.encode(), token) == 42
    assert tokens.verify_token(SECRET.encode(), token) is None  # not an unsubscribe link for subscriber 42
    assert report_message_id(b"another-secret-0123456789", token) is None
    assert json.dumps(token)  # URL- and JSON-safe


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_number_refused_at_submission_is_marked_bad_and_the_email_keeps_working(
    engine, config, make_subscriber, smtp_server, tmp_path, monkeypatch
) -> None:
    """The gateway refuses the number in its answer (not in a later report): the message fails,
    the number is marked refused and logged like a hard bounce, the subscriber stays active."""
    with WebhookReceiver() as api:
        api.answer(422, body=b'{"error": "invalid_number"}')
        cfg = api_config(tmp_path, config, smtp_server, api, monkeypatch, refused_statuses=[422])
        person = make_subscriber(region="66", email="keeps@example.org", phone="+79120000777")
        with write_session(engine) as session:
            incidents.declare(session, cfg, title="Сбой", regions=["66"])
        report = asyncio.run(send_due(engine, cfg))
    (row,) = sms_rows(engine)
    assert row.state == "failed" and "refused" in row.last_error and report.bounced == 1
    with read_session(engine) as session:
        subscriber = session.get(Subscriber, person.id)
        assert subscriber.phone_refused == "+79120000777" and subscriber.status == "active"
    assert "keeps@example.org" in {r for _, rcpts, _ in smtp_server.received for r in rcpts}
