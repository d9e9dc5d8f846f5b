"""`notifier serve` as a real process against a real SMTP server: nobody has to run `send`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from notifier.config import load_config
from tests.conftest import write_config
from tests.smtp_server import ScriptedSmtpServer

pytestmark = pytest.mark.slow


@pytest.fixture
def smtp_server() -> Any:
    with ScriptedSmtpServer() as server:
        yield server


def _serve_config(config: Any, server: Any, tmp_path: Path, **mailing: Any) -> Any:
    (tmp_path / "serve").mkdir(exist_ok=True)
    return load_config(write_config(
        tmp_path / "serve", config.notifier.database,
        smtp={"port": server.port, "connections": 4, "timeout": "5s"},
        mailing={"send_status_notices": False, "retry_backoff": "0s", "lease": "3s", **mailing},
        serve={"tick": "0.2s", "housekeeping": "0.5s", "shutdown_grace": "10s"},
    ))  # fmt: skip


class Daemon:
    def __init__(self, config: Any, log: Path) -> None:
        env = {**os.environ, "NOTIFIER_CONFIG": str(config.path), "PYTHONUNBUFFERED": "1"}
        self.log = log
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "notifier", "serve", "--no-web"], env=env,
            stdout=subprocess.DEVNULL, stderr=log.open("ab"),
        )  # fmt: skip

    def wait_started(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "notifier serve started" in self.log.read_text(errors="replace"):
                return
            if self.proc.poll() is not None:
                raise AssertionError(f"serve exited {self.proc.returncode}: {self.log.read_text()}")
            time.sleep(0.05)
        raise AssertionError("serve did not start: " + self.log.read_text())

    def stop(self, timeout: float = 20) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)


def _wait(predicate: Any, timeout: float = 20) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def _received(server: Any) -> Counter[str]:
    return Counter(r for _, rcpts, _ in server.received for r in rcpts)


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
