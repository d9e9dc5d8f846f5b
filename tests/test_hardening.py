"""Bad input from a careless user or an attacker: every one gets one clear line (never a
traceback), nothing is lost, nothing hidden reaches a terminal. The CLI as a user types it,
`notifier serve` as a real process; web hardening lives in tests/test_web_*.py."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import update

from notifier import incidents
from notifier.db import write_session
from notifier.errors import UsageError
from notifier.models import Incident
from tests.conftest import free_port


def _one_line(result, code: int = 2) -> str:
    assert result.exit_code == code, (result.stdout, result.stderr)
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    return result.stderr


# Times and durations ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "when", ["0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00", "1900-01-01T00:00"]
)
def test_a_started_at_out_of_range_is_one_line(cli, when):
    message = _one_line(cli("incident", "declare", "--title", "Сбой", "--region", "66", "--started-at", when))
    assert "--started-at" in message


@pytest.mark.parametrize("interval", ["99999999999d", "inf", "1e300", "15d"])
def test_a_callback_too_far_ahead_is_one_line(cli, interval):
    message = _one_line(
        cli("hotline", "log", "--caller", "+79123456789", "--note", "x", "--callback-in", interval)
    )
    assert message.startswith("error: --callback-in: ")


def test_a_callback_number_past_any_id_is_not_found(cli):
    result = cli("callbacks", "done", "99999999999999999999", "--outcome", "x")
    assert (
        result.exit_code == 1
        and "No callback by the id of" in result.stderr
        and result.stderr.count("\n") == 1
    )


# Names, titles, texts and what the terminal shows -------------------------------------------------


@pytest.mark.parametrize(
    ("title", "shown"),
    [
        ("Сбой \u202eзакрыт", "U+202E"),
        ("Сбой\x9b31m", "U+009B"),
        ("Сбой\x85x", "U+0085"),
        ("Сбой\u2028x", "U+2028"),
    ],
)
def test_titles_with_control_or_direction_characters_are_refused(cli, title, shown):
    message = _one_line(cli("incident", "declare", "--title", title, "--region", "66"))
    assert message.startswith("error: --title contains") and shown in message


def test_messages_keep_line_breaks_but_not_nel_or_line_separators(config, engine):
    with write_session(engine) as session:
        done = incidents.declare(session, config, title="Сбой\u200b отчётов", regions=["66"],
                                 message="Первая строка\nвторая", by="t")  # fmt: skip
        assert done.incident.title == "Сбой отчётов"  # the zero-width space is gone
        for text in ("строка\x85вторая", "строка\u2028вторая", "\u202eперевёрнуто"):
            with pytest.raises(UsageError, match="--message contains"):
                incidents.post_update(
                    session, config, done.incident.id, status="identified", message=text, by="t"
                )


def test_incident_list_never_prints_raw_controls(cli, config, engine):
    with write_session(engine) as session:
        done = incidents.declare(session, config, title="Сбой", regions=["66"], by="t")
        # as if stored before these rules existed
        session.execute(
            update(Incident).where(Incident.id == done.incident.id).values(title="A\x9b2J\u202eB\x1b[31m")
        )
    result = cli("incident", "list")
    assert result.exit_code == 0
    assert not any(char in result.stdout for char in "\x9b\u202e\x1b")
    assert "A<U+009B>2J<U+202E>B<U+001B>[31m" in result.stdout
    shown = cli("incident", "show", "INC-1")
    assert "\x9b" not in shown.stdout and "<U+009B>" in shown.stdout


# notifier serve: the port first, one line -------------------------------------------------------


def _serve(config_path: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NOTIFIER_CONFIG": str(config_path), "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", "notifier", "serve", *args], env=env, capture_output=True,
                          text=True, timeout=timeout)  # fmt: skip


@pytest.mark.parametrize("port", ["70000", "0", "-1"])
def test_serve_on_an_impossible_port_is_one_line(config_path, port):
    done = _serve(config_path, "--port", port)
    assert done.returncode == 2 and done.stderr == f"error: --port must be between 1 and 65 535, not {port}\n"


def test_serve_on_a_port_in_use_is_one_line_before_anything_starts(config_path):
    port = free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        done = _serve(config_path, "--port", str(port))
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(f"error: cannot listen on 127.0.0.1:{port}: Address already in use")
    assert done.stderr.count("\n") == 1 and "notifier serve started" not in done.stderr


def test_serve_on_an_address_that_is_not_here_is_one_line(config_path):
    done = _serve(config_path, "--host", "no-such-host.invalid")
    assert done.returncode == 2 and done.stderr.startswith("error: cannot listen on no-such-host.invalid:")
    assert done.stderr.count("\n") == 1


def test_hotline_lookup_shows_a_look_alike_domain_in_ascii(cli, make_subscriber):
    make_subscriber(name="Apple Billing", email="billing@аррӏе.com", phone="+79125550078")
    shown = cli("hotline", "lookup", "+79125550078").stdout
    assert "billing@xn--80ak6aa92e.com" in shown and "аррӏе" not in shown
