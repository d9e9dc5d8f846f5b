"""`notifier serve` as a real process against a real SMTP server: nobody has to run `send`."""

from __future__ import annotations

import email
import email.policy
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, mail_config, message_ids, recipients, wait_until
from tests.processes import ServeProcess
from tests.webhook_receiver import WebhookReceiver

pytestmark = pytest.mark.slow


def _serve_config(
    config: Any, server: Any, tmp_path: Path, hotline: dict | None = None, **mailing: Any
) -> Any:
    return mail_config(
        tmp_path / "serve", config.notifier.database, server.port,
        mailing={"send_status_notices": False, "heartbeat": "0.5s", "heartbeat_timeout": "2s", **mailing},
        serve={"tick": "0.2s", "housekeeping": "0.3s", "shutdown_grace": "10s"},
        hotline=hotline or {"targets": []},
    )  # fmt: skip


def Daemon(config: Any, log: Path) -> ServeProcess:  # noqa: N802 - reads as the thing it starts
    return ServeProcess(config, log)


def _wait(predicate: Any, timeout: float = 20) -> bool:
    return wait_until(predicate, timeout)


def _received(server: Any) -> Counter[str]:
    return recipients(server)


def test_resolve_from_cli_gets_the_apology_out_with_no_send(
    config, cli, make_subscriber, smtp_server, tmp_path
) -> None:
    cfg = _serve_config(config, smtp_server, tmp_path)
    people = [make_subscriber(region="66").email for _ in range(3)]
    daemon = Daemon(cfg, tmp_path / "serve.log")
    try:
        daemon.wait_started()
        assert cli("incident", "declare", "--title", "Сбой", "--region", "66", config=cfg.path).exit_code == 0
        assert (
            cli(
                "incident", "resolve", "INC-1", "--cause", "Отказ", "--measures", "Резерв", config=cfg.path
            ).exit_code
            == 0
        )
        assert _wait(lambda: len(smtp_server.received) >= 3, timeout=15)
    finally:
        assert daemon.stop() == 0
    assert _received(smtp_server) == Counter({p: 1 for p in people})
    log = daemon.log.read_text()
    assert "INC-1 apology: 3 sent" in log


def test_daemon_down_at_due_time_sends_once_when_back(
    config, cli, make_subscriber, smtp_server, tmp_path
) -> None:
    cfg = _serve_config(config, smtp_server, tmp_path, apology_delay="2s")
    make_subscriber(region="66")
    first = Daemon(cfg, tmp_path / "first.log")
    first.wait_started()
    cli("incident", "declare", "--title", "Сбой", "--region", "66", config=cfg.path)
    cli("incident", "resolve", "INC-1", "--cause", "Отказ", "--measures", "Резерв", config=cfg.path)
    assert first.stop() == 0  # stopped before the apology is due
    assert smtp_server.received == []
    time.sleep(2.2)
    second = Daemon(cfg, tmp_path / "second.log")
    try:
        second.wait_started()
        assert _wait(lambda: len(smtp_server.received) >= 1)
        time.sleep(1.0)  # several more ticks: nothing more goes out
    finally:
        assert second.stop() == 0
    assert len(smtp_server.received) == 1


def test_sigterm_mid_mailing_finishes_in_flight_and_restart_completes(
    config, cli, make_subscriber, smtp_server, tmp_path
) -> None:
    cfg = _serve_config(config, smtp_server, tmp_path, batch_size=10)
    people = [make_subscriber(region="66").email for _ in range(60)]
    smtp_server.on("DATA", "*", delay=0.05)
    cli("incident", "declare", "--title", "Сбой", "--region", "66", config=cfg.path)
    daemon = Daemon(cfg, tmp_path / "a.log")
    daemon.wait_started()
    cli("incident", "resolve", "INC-1", "--cause", "Отказ", "--measures", "Резерв", config=cfg.path)
    assert _wait(lambda: len(smtp_server.received) >= 10)
    assert daemon.stop() == 0
    stopped_at = len(smtp_server.received)
    assert stopped_at < 60
    status = cli("outbox", "INC-1", "--json", config=cfg.path).json()["messages"]["apology"]
    assert status.get("sending", 0) == 0  # nothing left claimed: in-flight finished, the rest handed back
    assert status.get("sent", 0) == stopped_at

    again = Daemon(cfg, tmp_path / "b.log")
    try:
        again.wait_started()
        assert _wait(lambda: len(smtp_server.received) >= 60, timeout=30)
    finally:
        assert again.stop() == 0
    assert _received(smtp_server) == Counter({p: 1 for p in people})  # no duplicates


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_second_daemon_on_the_same_sqlite_file_refuses(config, smtp_server, tmp_path) -> None:
    cfg = _serve_config(config, smtp_server, tmp_path)
    first = Daemon(cfg, tmp_path / "first.log")
    try:
        first.wait_started()
        env = {**os.environ, "NOTIFIER_CONFIG": str(cfg.path)}
        second = subprocess.run([sys.executable, "-m", "notifier", "serve", "--no-web"], env=env,
                                capture_output=True, text=True, timeout=30)  # fmt: skip
        assert second.returncode == 1
        assert f"another `notifier serve` (pid {first.proc.pid})" in second.stderr
        assert "Traceback" not in second.stderr
    finally:
        assert first.stop() == 0


def _to(server: Any, address: str) -> list[Any]:
    return [
        email.message_from_bytes(raw, policy=email.policy.default)
        for _, rcpts, raw in server.received
        if address in rcpts
    ]


def _text(message: Any) -> str:
    return message.get_body(("plain",)).get_content()


def test_hotline_targets_get_each_announcement_newest_wins(
    config, cli, make_subscriber, smtp_server, tmp_path
) -> None:
    with WebhookReceiver() as hook:
        targets = [
            {"email": "callcentre@example.org", "locale": "ru"},
            {"webhook": hook.url("/ivr"), "locale": "ru"},
        ]
        cfg = _serve_config(config, smtp_server, tmp_path, hotline={"targets": targets})
        make_subscriber(region="66")
        cli(
            "incident",
            "declare",
            "--title",
            "Сбой отчётности",
            "--region",
            "66",
            "--message",
            "Ищем",
            config=cfg.path,
        )
        cli(
            "incident",
            "update",
            "INC-1",
            "--status",
            "identified",
            "--message",
            "Отказ диска",
            config=cfg.path,
        )
        cli("incident", "update", "INC-1", "--status", "monitoring", "--message", "Переключили на резерв",
            config=cfg.path)  # fmt: skip
        daemon = Daemon(cfg, tmp_path / "serve.log")
        try:
            daemon.wait_started()
            assert _wait(lambda: _to(smtp_server, "callcentre@example.org") and hook.requests)
            time.sleep(1.0)
            # Three announcements queued while the daemon was down: only the newest goes out.
            (mail,) = _to(smtp_server, "callcentre@example.org")
            (request,) = hook.requests
            assert "Переключили на резерв" in _text(mail) and "Отказ диска" not in _text(mail)
            payload = request.json()
            assert payload["incident"] == "INC-1" and payload["status"] == "monitoring"
            assert "Переключили на резерв" in payload["text"]
            # A resolve while it runs is announced to both within seconds.
            cli("incident", "resolve", "INC-1", "--cause", "Диск", "--measures", "Замена", config=cfg.path)
            assert _wait(
                lambda: len(_to(smtp_server, "callcentre@example.org")) == 2 and len(hook.requests) == 2
            )
        finally:
            assert daemon.stop() == 0
        assert hook.requests[1].json()["status"] == "resolved"


def test_overdue_callback_is_escalated_once_per_threshold(
    config, cli, make_subscriber, smtp_server, tmp_path
) -> None:
    hotline = {"targets": [], "callback_escalate_after": "0s", "callback_escalate_again": "2s"}
    cfg = _serve_config(config, smtp_server, tmp_path, hotline=hotline)
    make_subscriber(region="66", name="Пётр Сидоров", phone="+79123456789")
    cli("incident", "declare", "--title", "Сбой", "--region", "66", config=cfg.path)
    logged = cli("hotline", "log", "--caller", "8 (912) 345-67-89", "--note", "Не ушёл отчёт в ФНС",
                 "--callback-in", "1s", "--by", "operator1", config=cfg.path)  # fmt: skip
    assert logged.exit_code == 0, logged.stderr
    support = cfg.notifier.support_email
    daemon = Daemon(cfg, tmp_path / "serve.log")
    try:
        daemon.wait_started()
        assert _wait(lambda: len(_to(smtp_server, support)) >= 1, timeout=10)
        first = _to(smtp_server, support)[0]
        assert "Пётр Сидоров" in _text(first) and "operator1" in _text(first)
        assert _wait(lambda: len(_to(smtp_server, support)) >= 2, timeout=10)
        time.sleep(1.5)  # many more housekeeping runs: no third escalation
        assert len(_to(smtp_server, support)) == 2
    finally:
        assert daemon.stop() == 0
    assert "escalations" in daemon.log.read_text()


def test_stale_incident_reminder_fires_once_per_stale_after(config, cli, make_subscriber, smtp_server, tmp_path) -> None:
    cfg = _serve_config(config, smtp_server, tmp_path, hotline={"targets": [], "stale_after": "3s"})
    cli("incident", "declare", "--title", "Тихий сбой", "--region", "66", config=cfg.path)
    oncall = cfg.notifier.oncall_email
    daemon = Daemon(cfg, tmp_path / "serve.log")
    try:
        daemon.wait_started()
        assert _wait(lambda: len(_to(smtp_server, oncall)) >= 1, timeout=10)
        time.sleep(1.5)
        assert len(_to(smtp_server, oncall)) == 1  # one reminder per stale_after of silence ...
        assert "INC-1" in _text(_to(smtp_server, oncall)[0])
        assert _wait(lambda: len(_to(smtp_server, oncall)) >= 2, timeout=10)  # ... and again while it lasts
    finally:
        assert daemon.stop() == 0


# Delivery you can trust ------------------------------------------------------------------


def test_a_relay_slower_than_the_heartbeat_timeout_delivers_each_message_exactly_once(
    config, cli, make_subscriber, smtp_server, tmp_path
) -> None:
    """The old per-message lease ran out under a slow relay and serve sent twice; a heartbeat
    holds whatever the relay's pace. The mailing takes several heartbeat timeouts (2 s)."""
    cfg = _serve_config(config, smtp_server, tmp_path, batch_size=200)
    for _ in range(40):
        make_subscriber(region="66")
    smtp_server.on("DATA", "*", delay=0.4)  # 4 connections: ~10 messages/s, 40 messages in ~4 s
    cli("incident", "declare", "--title", "Сбой", "--region", "66", config=cfg.path)
    daemon = Daemon(cfg, tmp_path / "serve.log")
    try:
        daemon.wait_started()
        started = time.monotonic()
        cli("incident", "resolve", "INC-1", "--cause", "Отказ", "--measures", "Резерв", config=cfg.path)
        assert _wait(lambda: len(smtp_server.received) >= 40, timeout=60)
        took = time.monotonic() - started
        time.sleep(2.5)  # more heartbeat timeouts and housekeeping runs: nothing more goes out
    finally:
        assert daemon.stop() == 0
    ids = message_ids(smtp_server)
    assert len(ids) == 40 and set(ids.values()) == {1}, ids.most_common(3)
    assert took > 2 * 2  # it really was slower than two heartbeat timeouts
    log = daemon.text()
    assert "taken back" not in log and "maximum number of running instances" not in log
    assert "Traceback" not in log


def test_a_template_broken_while_serve_runs_pauses_and_resumes_after_the_fix(
    config, cli, make_subscriber, smtp_server, tmp_path
) -> None:
    """Broken during an incident: nothing stays `sending`, nothing goes twice, file and line are
    named (log and on-call note); fixed: the mailing completes without a restart."""
    shutil.copytree(REPO / "templates", tmp_path / "templates")
    cfg = mail_config(
        tmp_path / "serve", config.notifier.database, smtp_server.port,
        notifier={"templates": str(tmp_path / "templates")},
        mailing={"heartbeat": "0.5s", "heartbeat_timeout": "2s"},
        serve={"tick": "0.2s", "housekeeping": "0.3s", "shutdown_grace": "10s"},
    )  # fmt: skip
    people = [make_subscriber(region="66", locale="ru").email for _ in range(12)]
    body = tmp_path / "templates" / "email" / "status" / "ru" / "body.txt"
    good = body.read_text(encoding="utf-8")
    daemon = Daemon(cfg, tmp_path / "serve.log")
    try:
        daemon.wait_started()
        cli("incident", "declare", "--title", "Сбой", "--region", "66", "--message", "Ищем", config=cfg.path)
        assert _wait(lambda: len(recipients(smtp_server)) >= 12, timeout=20)  # the first notices
        # A hurried edit that `templates check` cannot catch (the sample update says something else):
        body.write_text('{% if update.message == "Нашли" %}{{ incident.titel }}{% endif %}\n' + good,
                        encoding="utf-8")  # fmt: skip
        time.sleep(0.3)  # a pass or two later: serve has seen the edit (it looks at each pass)
        cli("incident", "update", "INC-1", "--status", "identified", "--message", "Нашли", config=cfg.path)
        oncall = cfg.notifier.oncall_email
        assert _wait(lambda: any(oncall in r for _, r, _ in smtp_server.received), timeout=20)
        outbox_now = cli("outbox", "INC-1", "--json", config=cfg.path).json()["messages"]["status"]
        assert outbox_now.get("sending", 0) == 0 and outbox_now.get("sent") == 12
        assert outbox_now.get("retry", 0) + outbox_now.get("queued", 0) == 12  # waiting, not lost
        log = daemon.text()
        assert "email/status/ru/body.txt:1" in log and "titel" in log and "paused" in log
        (note,) = [raw for _, r, raw in smtp_server.received if oncall in r]
        assert b"body.txt:1" in email.message_from_bytes(note, policy=email.policy.default).get_body(
            ("plain",)).get_content().encode()
        body.write_text(good, encoding="utf-8")  # fixed; serve is not restarted
        assert _wait(lambda: recipients(smtp_server)[people[0]] >= 2, timeout=20)
        assert _wait(lambda: sum(recipients(smtp_server)[p] for p in people) == 24, timeout=20)
    finally:
        assert daemon.stop() == 0
    ids = message_ids(smtp_server)
    assert set(ids.values()) == {1}  # nothing went twice
    assert "resumes" in daemon.text() and "Traceback" not in daemon.text()


def test_sigterm_with_the_web_running_stops_cleanly_without_a_traceback(config, smtp_server, tmp_path) -> None:
    from tests.conftest import free_port
    from tests.processes import environment, notifier_command

    cfg = _serve_config(config, smtp_server, tmp_path)
    port = free_port()
    log = tmp_path / "serve.log"
    proc = subprocess.Popen(notifier_command("serve", "--port", str(port)), env=environment(cfg),
                            stdout=subprocess.DEVNULL, stderr=log.open("ab"))  # fmt: skip
    try:
        assert _wait(lambda: "web on http://" in log.read_text(errors="replace"), timeout=20), log.read_text()
        import httpx

        assert httpx.get(f"http://127.0.0.1:{port}/", timeout=5, trust_env=False).status_code == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    text = log.read_text(errors="replace")
    assert "notifier serve stopped" in text
    assert "Traceback" not in text and "CancelledError" not in text, text


def test_a_template_bomb_that_only_some_data_sets_off_pauses_and_serve_keeps_answering(
    config, cli, make_subscriber, smtp_server, tmp_path
) -> None:
    """`templates check` passes (the sample reader is not the one), then a real reader sets off
    a loop of ten billion steps: the render stops at its bound, the mailing pauses with the file
    and line, the status page still answers and SIGTERM still stops serve."""
    import httpx

    from tests.conftest import free_port
    from tests.processes import environment, notifier_command

    shutil.copytree(REPO / "templates", tmp_path / "templates")
    body = tmp_path / "templates" / "email" / "status" / "ru" / "body.txt"
    body.write_text('{% if reader.name == "Бомба" %}{% for a in range(100000) %}{% for b in range(100000) %}x'
                    "{% endfor %}{% endfor %}{% endif %}" + body.read_text(encoding="utf-8"), encoding="utf-8")  # fmt: skip
    cfg = mail_config(
        tmp_path / "serve", config.notifier.database, smtp_server.port,
        notifier={"templates": str(tmp_path / "templates")},
        serve={"tick": "0.2s", "housekeeping": "0.3s", "shutdown_grace": "10s"},
    )  # fmt: skip
    assert cli("templates", "check", config=cfg.path).exit_code == 0
    make_subscriber(region="66", name="Бомба")
    port = free_port()
    log = tmp_path / "serve.log"
    proc = subprocess.Popen(notifier_command("serve", "--port", str(port)), env=environment(cfg),
                            stdout=subprocess.DEVNULL, stderr=log.open("ab"))  # fmt: skip
    try:
        assert _wait(lambda: "web on http://" in log.read_text(errors="replace"), timeout=20)
        cli("incident", "declare", "--title", "Сбой", "--region", "66", config=cfg.path)
        assert _wait(lambda: "paused" in log.read_text(errors="replace"), timeout=20), log.read_text()
        started = time.monotonic()
        page = httpx.get(f"http://127.0.0.1:{port}/", timeout=5, trust_env=False)
        assert page.status_code == 200 and time.monotonic() - started < 5
        status = cli("outbox", "--json", config=cfg.path).json()
        assert status["messages"]["status"].get("sending", 0) == 0
        (paused,) = status["paused"]
        assert paused["problem"].startswith(str(body)) or "email/status/ru/body.txt:1" in paused["problem"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    text = log.read_text(errors="replace")
    assert "email/status/ru/body.txt:1" in text and "loop" in text and "Traceback" not in text


def test_housekeeping_reminds_oncall_of_planned_work_that_overran(engine, config, tmp_path) -> None:
    """A maintenance past its end (plus [maintenance].overrun_margin) and not completed: serve's
    housekeeping queues one note to on-call, and only one however often it runs."""
    from datetime import timedelta

    from sqlmodel import select

    from notifier import maintenance
    from notifier.db import read_session, write_session
    from notifier.models import Message, utcnow
    from notifier.scheduler import Daemon as RealDaemon

    now = utcnow()
    with write_session(engine) as session:
        maintenance.schedule(session, config, title="Обновление сервера БД", regions=["66"],
                             starts_at=now - timedelta(hours=3), ends_at=now - timedelta(hours=2),
                             now=now - timedelta(days=2))  # fmt: skip
    daemon = RealDaemon(engine, config)
    assert daemon.housekeeping()["maintenance overrun notes"] == 1
    assert daemon.housekeeping()["maintenance overrun notes"] == 0
    with read_session(engine) as session:
        notes = [m for m in session.exec(select(Message)) if m.recipient == config.notifier.oncall_email]
    assert len(notes) == 1
