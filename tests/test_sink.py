"""The sink stores what it receives as .eml files that parse back, prints a line per
message, and `notifier sink` starts, receives and stops on Ctrl-C."""

from __future__ import annotations

import email
import email.policy
import os
import signal
import smtplib
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from notifier.composing import Composer
from notifier.sink import ReceivedMessage, Sink, header_value


def composed(n: int, subject: str = "Сервис восстановлен") -> bytes:
    composer = Composer("noreply@example.org", "Контур")
    return composer.compose(
        message_id=composer.message_id(n),
        to_name="Иван Петров",
        to_address=f"user{n}@example.org",
        subject=subject,
        text="Текст письма",
        html="<p>Текст письма</p>",
        date=datetime(2026, 11, 23, 10, 5, tzinfo=UTC),
        unsubscribe_url=None,
    )


def send(port: int, *numbers: int) -> None:
    with smtplib.SMTP("127.0.0.1", port, local_hostname="client.test", timeout=10) as client:
        for n in numbers:
            client.sendmail("noreply@example.org", [f"user{n}@example.org"], composed(n))


def test_sink_stores_messages_that_parse_back(tmp_path: Path) -> None:
    seen: list[ReceivedMessage] = []
    with Sink(tmp_path / "mail", on_message=seen.append) as sink:
        send(sink.port, 1, 2, 3)
        assert sink.wait_for(3, timeout=5)
    files = sorted((tmp_path / "mail").glob("*.eml"))
    assert [f.name for f in files] == [
        "000001-notifier.1.0@example.org.eml",
        "000002-notifier.2.0@example.org.eml",
        "000003-notifier.3.0@example.org.eml",
    ]
    assert files[0].read_bytes() == composed(1)
    msg = email.message_from_bytes(files[1].read_bytes(), policy=email.policy.default)
    assert msg["Subject"] == "Сервис восстановлен"
    assert msg.get_body(("plain",)).get_content() == "Текст письма"  # type: ignore[union-attr]
    assert sink.messages == 3 and len(seen) == 3
    assert seen[2].mail_from == "noreply@example.org" and seen[2].rcpt_tos == ["user3@example.org"]
    assert seen[2].subject == "Сервис восстановлен"


def test_sink_continues_numbering_after_an_earlier_run(tmp_path: Path) -> None:
    with Sink(tmp_path) as sink:
        send(sink.port, 1)
        assert sink.wait_for(1)
    with Sink(tmp_path) as sink:
        send(sink.port, 2)
        assert sink.wait_for(1)
    assert sorted(p.name[:6] for p in tmp_path.glob("*.eml")) == ["000001", "000002"]


def test_sink_without_directory_keeps_messages_in_memory() -> None:
    with Sink() as sink:
        send(sink.port, 7)
        assert sink.wait_for(1)
    assert sink.received[0].path is None and sink.received[0].raw() == composed(7)


def test_header_value_unfolds_and_decodes() -> None:
    raw = composed(1, subject="Очень длинная тема письма, которая обязательно будет перенесена на строки")
    assert (
        header_value(raw, "subject")
        == "Очень длинная тема письма, которая обязательно будет перенесена на строки"
    )
    assert header_value(raw, "Message-ID") == "<notifier.1.0@example.org>"
    assert header_value(raw, "X-Missing") is None


def _wait_for_line(proc: subprocess.Popen[str], needle: str, timeout: float = 20) -> str:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if needle in line:
            return line
        if not line and proc.poll() is not None:
            break
    raise AssertionError(f"no line with {needle!r} from the sink")


def test_cli_sink_receives_prints_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    # Importing notifier.cli.sink attaches the command even before notifier/cli/__init__.py
    # registers it; `notifier sink` is the same thing.
    code = "import notifier.cli.sink; from notifier.cli import main; main()"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "sink", "--port", "0", "--dir", str(tmp_path / "mail")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        banner = _wait_for_line(proc, "Listening on 127.0.0.1:")
        port = int(banner.split("127.0.0.1:")[1].split(",")[0])
        send(port, 5)
        line = _wait_for_line(proc, "#1")
        assert "noreply@example.org -> user5@example.org" in line and "Сервис восстановлен" in line
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "Stopped after 1 message." in out
    assert len(list((tmp_path / "mail").glob("*.eml"))) == 1
