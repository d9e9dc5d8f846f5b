"""The Alertmanager webhook over real HTTP: bearer token, declaring, widening, calming, and
4xx JSON with a reason for anything it cannot use (never a 500), on both databases."""

from __future__ import annotations

import contextlib
import json
import select
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select as where

from notifier import incidents
from notifier.db import read_session, write_session
from notifier.models import Message
from notifier.web import create_app
from tests.conftest import write_out
from tests.web_server import running

TOKEN = "alert-token-0123456789"
URL = "/api/alerts/alertmanager"


@pytest.fixture
def web(config: Any, engine: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[httpx.Client]:
    monkeypatch.setenv(config.serve.alert_token_env, TOKEN)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with (
        running(create_app(config, engine)) as url,
        httpx.Client(base_url=url, headers=headers, timeout=20) as client,
    ):
        yield client


def payload(*alerts: dict[str, Any], status: str = "firing") -> dict[str, Any]:
    return {"version": "4", "groupKey": "{}:{alertname=\"ReportsDown\"}", "truncatedAlerts": 0, "status": status,
            "receiver": "notifier", "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {},
            "externalURL": "http://alertmanager.local", "alerts": list(alerts)}  # fmt: skip


def alert(
    service: str = "tax-reporting", region: str = "66", status: str = "firing", **labels: str
) -> dict[str, Any]:
    return {"status": status, "labels": {"alertname": "ReportsDown", "service": service, "region": region, **labels},
            "annotations": {"summary": "db-7 is down, secret internal host"},
            "startsAt": "2020-01-01T00:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus.local/graph", "fingerprint": "abc"}  # fmt: skip


def _open(engine: Any) -> list[Any]:
    with read_session(engine) as session:
        return incidents.list_incidents(session, open_only=True)


def test_a_firing_alert_declares_an_incident_with_a_public_title(web, engine) -> None:
    response = web.post(URL, json=payload(alert(severity="critical")))
    assert response.status_code == 200
    assert response.json()["actions"][0]["action"] == "declared"
    (incident,) = _open(engine)
    assert (
        incident.regions == ["66"]
        and incident.services == ["tax-reporting"]
        and incident.severity == "critical"
    )
    assert incident.declared_by == "alertmanager" and "secret" not in incident.title
    assert "Налоговая отчётность" in incident.title


def test_repeated_firing_changes_nothing_and_another_region_widens(web, engine) -> None:
    web.post(URL, json=payload(alert()))
    assert web.post(URL, json=payload(alert())).json()["actions"][0]["action"] == "none"
    assert web.post(URL, json=payload(alert(region="74"))).json()["actions"][0]["action"] == "widened"
    (incident,) = _open(engine)
    assert incident.regions == ["66", "74"]


def test_a_resolved_alert_moves_the_incident_to_monitoring(web, engine) -> None:
    web.post(URL, json=payload(alert()))
    response = web.post(URL, json=payload(alert(status="resolved"), status="resolved"))
    assert response.json()["actions"][0]["action"] == "monitoring"
    (incident,) = _open(engine)
    assert incident.status == "monitoring"
    again = web.post(URL, json=payload(alert(status="resolved"), status="resolved"))
    assert again.json()["actions"][0]["action"] == "none"


def test_a_resolved_alert_without_an_open_incident_does_nothing(web, engine) -> None:
    response = web.post(URL, json=payload(alert(status="resolved"), status="resolved"))
    assert response.status_code == 200 and _open(engine) == []


def test_alerts_without_our_labels_are_ignored_with_a_reason(web, engine) -> None:
    other = {"status": "firing", "labels": {"alertname": "HighCPU"}}
    response = web.post(URL, json=payload(other, alert()))
    assert response.status_code == 200
    assert "needs the labels" in response.json()["ignored"][0]["reason"]
    response = web.post(URL, json=payload(other, alert(service="nope")))
    assert response.status_code == 422 and "unknown service 'nope'" in response.json()["error"]["message"]
    assert len(_open(engine)) == 1


def test_no_or_a_wrong_token_is_refused(web, engine) -> None:
    for headers in (
        {"Authorization": ""},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Basic {TOKEN}"},
    ):
        response = web.post(URL, json=payload(alert()), headers=headers)
        assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer"
    assert _open(engine) == []


def test_without_a_configured_token_the_webhook_is_off(config, engine, monkeypatch) -> None:
    monkeypatch.delenv(config.serve.alert_token_env, raising=False)
    with running(create_app(config, engine)) as url:
        response = httpx.post(url + URL, json=payload(alert()), headers={"Authorization": "Bearer x"})
    assert response.status_code == 503 and config.serve.alert_token_env in response.json()["error"]["message"]


@pytest.mark.parametrize("body", ["not json", "[]", "{}", '{"status": "firing", "alerts": []}',
                                  '{"status": "burning", "alerts": [{"status": "firing"}]}',
                                  '{"status": "firing", "alerts": [{"status": "firing", "labels": {"service": 1}}]}'])  # fmt: skip
def test_bad_payloads_get_a_4xx_with_a_reason(web, engine, body) -> None:
    response = web.post(URL, content=body, headers={"Content-Type": "application/json"})
    assert 400 <= response.status_code < 500
    assert response.json()["error"]["message"]
    assert _open(engine) == []


_label = st.one_of(
    st.sampled_from(["66", "74", "tax-reporting", "edo", "", "critical"]), st.text(max_size=20)
)
_alert = st.fixed_dictionaries(
    {"status": st.sampled_from(["firing", "resolved", "pending"]),
     "labels": st.dictionaries(st.sampled_from(["service", "region", "severity", "x"]), _label, max_size=4)},
    optional={"startsAt": st.one_of(st.text(max_size=30), st.sampled_from(["2020-01-01T00:00:00Z", "3000-01-01T00:00:00Z"])),
              "annotations": st.dictionaries(st.text(max_size=5), st.text(max_size=20), max_size=2)},
)  # fmt: skip
_json = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=10),
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                     max_leaves=10)  # fmt: skip
_body = st.one_of(
    st.fixed_dictionaries({"status": st.sampled_from(["firing", "resolved"]), "alerts": st.lists(_alert, max_size=4)},
                          optional={"version": st.sampled_from(["4", "3", 4])}),
    _json,
)  # fmt: skip


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=_body)
def test_no_payload_gets_a_server_error(web, body) -> None:
    response = web.post(URL, content=json.dumps(body), headers={"Content-Type": "application/json"})
    assert response.status_code < 500, response.text
    assert "error" in response.json() or "actions" in response.json()


def test_label_names_come_from_the_config(config_path, database_url, engine, monkeypatch) -> None:
    from notifier.config import load_config
    from tests.conftest import write_config

    custom = load_config(write_config(
        config_path.parent, database_url, serve={"alert_service_label": "app", "alert_region_label": "subject_code"}
    ))  # fmt: skip
    monkeypatch.setenv(custom.serve.alert_token_env, TOKEN)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with (
        running(create_app(custom, engine)) as url,
        httpx.Client(base_url=url, headers=headers, timeout=20) as web,
    ):
        plain = web.post(URL, json=payload(alert()))  # labelled service/region: not what this config reads
        assert plain.status_code == 422 and "'app'" in plain.json()["error"]["message"]
        relabelled = {**alert(), "labels": {"alertname": "ReportsDown", "app": "edo", "subject_code": "25"}}
        assert web.post(URL, json=payload(relabelled)).json()["actions"][0]["action"] == "declared"
    (incident,) = _open(engine)
    assert incident.services == ["edo"] and incident.regions == ["25"]


# The token before the body, the body bounded --------------------------------------------------------

BIG = 100 * 1024 * 1024


def _rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _post_streaming(base_url: str, headers: dict[str, str], total: int = BIG) -> tuple[int, int]:
    """POST ``total`` bytes from a raw socket, a chunk at a time, stopping as soon as the server
    answers: (status, bytes the server let us send before it answered)."""
    host, port = base_url.removeprefix("http://").split(":")
    head = f"POST {URL} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {total}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    chunk, sent, answer = b"x" * 65536, 0, b""
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head.encode())
        sock.setblocking(False)
        while sent < total and b"\r\n\r\n" not in answer:
            readable, writable, _ = select.select([sock], [sock], [], 5)
            if readable:
                data = sock.recv(65536)
                if not data:
                    break
                answer += data
            elif writable:
                with contextlib.suppress(BlockingIOError, BrokenPipeError, ConnectionResetError):
                    sent += sock.send(chunk)
            else:
                break
        sock.setblocking(True)
        while b"\r\n\r\n" not in answer:
            data = sock.recv(65536)
            if not data:
                break
            answer += data
    return int(answer.split(b" ", 2)[1]), sent


def test_a_100_mb_body_without_a_token_is_refused_before_it_is_read(web, engine) -> None:
    base = str(web.base_url).rstrip("/")
    before = _rss_kb()
    results = []
    threads = [threading.Thread(target=lambda: results.append(_post_streaming(base, {}))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert [status for status, _ in results] == [401] * 4
    assert all(sent < BIG // 10 for _, sent in results), results  # answered long before the end
    assert _rss_kb() - before < 20_000  # kB: four 100 MB bodies never landed in memory
    assert _open(engine) == []


def test_a_body_over_the_cap_with_the_token_is_413_without_being_read(web, engine) -> None:
    base = str(web.base_url).rstrip("/")
    status, sent = _post_streaming(base, {"Authorization": f"Bearer {TOKEN}"})
    assert status == 413 and sent < BIG // 10
    chunked = web.post(URL, content=iter([b"[" + b" " * 65536] * 8))  # no Content-Length: counted as read
    assert chunked.status_code == 413 and "KB" in chunked.json()["error"]["message"]
    assert _open(engine) == []


@pytest.mark.parametrize(
    "body", ["not json", '{"status": "firing", "alerts": [{"status": "fi"ring"}]}', "\x00\x9b"]
)
def test_without_a_token_any_body_gets_401_not_a_parser_message(web, body) -> None:
    response = web.post(URL, content=body, headers={"Authorization": "", "Content-Type": "application/json"})
    assert response.status_code == 401 and "JSON" not in response.text and "Invalid" not in response.text


# Re-fire after recovery ----------------------------------------------------------------------------


def _status_notices(engine: Any, incident_id: int) -> list[Any]:
    write_out(engine)  # as the senders write them out
    with read_session(engine) as session:
        query = where(Message).where(Message.incident_id == incident_id, Message.kind == "status")
        return list(session.execute(query).scalars())


def test_a_refire_after_recovery_reopens_and_tells_the_audience(web, engine, make_subscriber) -> None:
    make_subscriber(region="66", services=["tax-reporting"])
    web.post(URL, json=payload(alert()))
    web.post(URL, json=payload(alert(status="resolved"), status="resolved"))
    response = web.post(URL, json=payload(alert()))
    assert response.json()["actions"][0] == {
        "action": "returned",
        "incident": "INC-1",
        "status": "identified",
    }
    (incident,) = _open(engine)
    assert incident.status == "identified"
    with read_session(engine) as session:
        latest = incidents.timeline(session, incident.id)[-1]
    assert (
        latest.status == "identified"
        and "проблема вернулась" in latest.message
        and latest.author == "alertmanager"
    )
    unsent = [m for m in _status_notices(engine, incident.id) if m.state == "queued"]
    assert [m.update_id for m in unsent] == [latest.id]  # the audience is told it broke again
    again = web.post(URL, json=payload(alert()))
    assert again.json()["actions"][0]["action"] == "none"  # Alertmanager's repeats change nothing more


def test_a_refire_in_a_new_region_while_monitoring_reopens_and_widens(web, engine) -> None:
    web.post(URL, json=payload(alert()))
    web.post(URL, json=payload(alert(status="resolved"), status="resolved"))
    action = web.post(URL, json=payload(alert(region="74"))).json()["actions"][0]
    assert action["action"] == "returned and widened" and action["incident"] == "INC-1"
    (incident,) = _open(engine)
    assert incident.status == "identified" and incident.regions == ["66", "74"]


def test_a_refire_after_resolution_opens_a_new_incident_naming_the_old_one(web, engine, config) -> None:
    web.post(URL, json=payload(alert()))
    with write_session(engine) as session:
        incidents.resolve(session, config, "INC-1", cause="Диск", measures="Заменили", by="ivanova")
    action = web.post(URL, json=payload(alert())).json()["actions"][0]
    assert action["action"] == "declared" and action["incident"] == "INC-2" and action["follows"] == "INC-1"
    (incident,) = _open(engine)
    with read_session(engine) as session:
        first = incidents.timeline(session, incident.id)[0]
    assert "INC-1" in first.message and "повторился" in first.message
    other = web.post(URL, json=payload(alert(service="edo", region="54"))).json()["actions"][0]
    assert other["action"] == "declared" and "follows" not in other


# Property: malformed JSON and control characters never make a 500 ----------------------------------

_CONTROL = st.sampled_from(["\x00", "\x1b", "\x85", "\x9b", "\u2028", "\u202e", "\u200b", "\ud800"])


def _corrupt(text: str, kind: str, at: int, char: str) -> str:
    at = at % (len(text) + 1)
    if kind == "quote":
        return text[:at] + '"' + text[at:]
    if kind == "cut":
        return text[:at]
    return text[:at] + char + text[at:]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=_body, kind=st.sampled_from(["quote", "cut", "char"]), at=st.integers(0, 400), char=_CONTROL,
       labels=st.dictionaries(st.sampled_from(["service", "region", "severity"]), st.text(_CONTROL, max_size=3)))  # fmt: skip
def test_malformed_quotes_and_control_characters_get_a_4xx(web, body, kind, at, char, labels) -> None:
    if isinstance(body, dict) and body.get("alerts"):
        body["alerts"][0]["labels"] = {**body["alerts"][0]["labels"], **labels}
    text = _corrupt(json.dumps(body), kind, at, char)
    response = web.post(
        URL, content=text.encode("utf-8", "surrogatepass"), headers={"Content-Type": "application/json"}
    )
    assert response.status_code < 500, response.text
    assert "error" in response.json() or "actions" in response.json()
