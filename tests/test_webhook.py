"""The webhook transport against a real HTTP receiver on 127.0.0.1: every kind of answer is
classified right, and the JSON a hotline webhook receives."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from notifier.delivery import SendOutcome
from notifier.delivery.sender import message_facts
from notifier.delivery.webhook import WebhookMessenger, webhook_payload
from notifier.models import Callback, Incident, Message, Update
from notifier.outbox.loading import Job
from tests.conftest import free_port
from tests.webhook_receiver import WebhookReceiver

BODY = json.dumps({"text": "Сбой в Свердловской области"}, ensure_ascii=False).encode()


@pytest.fixture
def hook() -> Any:
    with WebhookReceiver() as receiver:
        yield receiver


def post(url: str, data: bytes = BODY, *, timeout: float = 5) -> SendOutcome:
    async def run() -> SendOutcome:
        async with WebhookMessenger(timeout=timeout) as transport:
            return await transport.send("noreply@example.org", url, data)

    return asyncio.run(run())


def test_a_2xx_answer_is_sent_and_the_receiver_gets_json(hook) -> None:
    outcome = post(hook.url("/ivr"))
    assert outcome.status == "sent" and outcome.code == 200
    [request] = hook.requests
    assert request.path == "/ivr" and request.headers["content-type"].startswith("application/json")
    assert request.json() == {"text": "Сбой в Свердловской области"}
    hook.answer(204)
    assert post(hook.url()).status == "sent"


@pytest.mark.parametrize("status", [408, 425, 429, 500, 502, 503])
def test_server_trouble_and_throttling_are_transient(hook, status) -> None:
    hook.answer(status, headers={"Retry-After": "30"} if status == 429 else None, body=b"busy")
    outcome = post(hook.url())
    assert outcome.status == "transient" and outcome.code == status
    assert "busy" in outcome.detail and (status != 429 or "Retry-After: 30" in outcome.detail)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 422])
def test_other_client_errors_fail_the_message(hook, status) -> None:
    hook.answer(status, body=b'{"error": "bad payload"}')
    outcome = post(hook.url())
    assert (
        outcome.status == "permanent_message" and outcome.code == status and "bad payload" in outcome.detail
    )


def test_a_redirect_is_not_followed_and_fails_the_message(hook) -> None:
    hook.answer(301, headers={"Location": "https://elsewhere.example/hook"})
    outcome = post(hook.url())
    assert outcome.status == "permanent_message" and "elsewhere.example" in outcome.detail
    assert len(hook.requests) == 1


def test_nobody_listening_is_transient() -> None:
    outcome = post(f"http://127.0.0.1:{free_port()}/hook")
    assert outcome.status == "transient" and not outcome.ambiguous


def test_a_timeout_after_posting_is_transient_and_ambiguous(hook) -> None:
    hook.answer(200, delay=1.0)
    outcome = post(hook.url(), timeout=0.2)
    assert outcome.status == "transient" and outcome.ambiguous and "timed out" in outcome.detail


def test_a_connection_dropped_without_an_answer_is_transient(hook) -> None:
    hook.answer(drop=True)
    outcome = post(hook.url())
    assert outcome.status == "transient"


def test_a_url_that_is_not_http_fails_the_message() -> None:
    assert post("ftp://127.0.0.1/hook").status == "permanent_message"


def test_send_before_start_is_a_bug() -> None:
    with pytest.raises(RuntimeError, match="before start"):
        asyncio.run(WebhookMessenger().send("", "http://127.0.0.1:9/", b"{}"))


def test_several_posts_share_one_transport(hook) -> None:
    async def run() -> list[SendOutcome]:
        async with WebhookMessenger(timeout=5) as transport:
            return list(
                await asyncio.gather(*(transport.send("", hook.url(f"/{n}"), BODY) for n in range(5)))
            )

    assert [o.status for o in asyncio.run(run())] == ["sent"] * 5
    assert sorted(r.path for r in hook.requests) == [f"/{n}" for n in range(5)]


def test_webhook_payload_carries_the_text_and_the_incident_as_data() -> None:
    at = datetime(2026, 11, 23, 7, 35, tzinfo=UTC)
    incident = Incident(id=3, title="Не уходят отчёты", severity="critical", status="identified",
                        regions=["66", "74"], services=["tax-reporting"], updated_at=at)  # fmt: skip
    update = Update(
        id=5, incident_id=3, kind="update", status="identified", message="Нашли причину", created_at=at
    )
    subject, text = "Горячая линия, INC-3", "Сейчас у нас сбой.\n"
    hotline = Message(id=1, kind="hotline", channel="webhook", dedupe_key="k")
    data = json.loads(webhook_payload("hotline", subject, text, message_facts(Job(hotline, incident=incident, update=update))))
    assert data == {
        "kind": "hotline", "subject": "Горячая линия, INC-3", "text": "Сейчас у нас сбой.\n", "incident": "INC-3",
        "title": "Не уходят отчёты", "status": "identified", "severity": "critical", "regions": ["66", "74"],
        "services": ["tax-reporting"], "updated_at": "2026-11-23T07:35:00+00:00",
        "update": {"status": "identified", "message": "Нашли причину", "at": "2026-11-23T07:35:00+00:00"},
    }  # fmt: skip
    callback = Callback(id=9, call_id=1, due_at=at, owner="petrova", escalations=1)
    escalated = Message(id=2, kind="escalation", channel="webhook", dedupe_key="e")
    raw = webhook_payload("escalation", subject, text, message_facts(Job(escalated, callback=callback)))
    assert "Горячая".encode() in raw  # UTF-8, not \u escapes
    escalation = json.loads(raw)
    assert escalation["incident"] is None and escalation["regions"] == []
    assert escalation["callback"] == {"id": 9, "due_at": "2026-11-23T07:35:00+00:00", "owner": "petrova",
                                      "escalations": 1, "done": False}  # fmt: skip
