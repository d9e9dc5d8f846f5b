"""`notifier hotline …` and `notifier callbacks …` driven as an operator types them."""

from __future__ import annotations

import json
import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

import pytest

import notifier.cli.hotline  # noqa: F401  (registers the commands until notifier.cli does)
from notifier import hotline
from notifier.db import write_session
from notifier.models import utcnow
from tests.processes import notifier_command


@pytest.fixture
def caller(cli, make_subscriber):
    sub = make_subscriber(external_id="ACC-777001", name="Ирина Петрова", email="irina@example.org",
                          phone="+79123456789", region="66")  # fmt: skip
    make_subscriber(region="77")
    assert cli("incident", "declare", "--title", "Не уходят отчёты", "--region", "66").exit_code == 0
    return sub


def test_lookup_by_phone_says_affected_what_was_sent_and_what_to_say(cli, caller) -> None:
    result = cli("hotline", "lookup", "8 (912) 345-67-89")
    assert result.exit_code == 0, result.stderr
    assert "Ирина Петрова" in result.stdout and "AFFECTED by: INC-1" in result.stdout
    assert "status" in result.stdout and "queued" in result.stdout
    assert "What to say (INC-1)" in result.stdout and "Сейчас у нас сбой" in result.stdout
    data = cli("hotline", "lookup", "ПЕТРОВА", "--json").json()
    [found] = data["found"]
    assert found["affected"] is True and found["subscriber"]["account"] == "ACC-777001"
    assert found["messages"][0]["kind"] == "status" and found["script"][0]["incident"] == "INC-1"


def test_lookup_prints_a_name_as_it_is_stored_not_as_emoji_or_terminal_codes(cli, make_subscriber) -> None:
    make_subscriber(name="Ромашка :fire: :thumbs_up:", email="romashka@example.org", region="66")
    make_subscriber(name="Evil\x1b[2Jman", email="evil@example.org", region="66")
    shown = cli("hotline", "lookup", "romashka@example.org").stdout
    assert "Ромашка :fire: :thumbs_up:" in shown and "\N{FIRE}" not in shown
    shown = cli("hotline", "lookup", "evil@example.org").stdout
    assert "\x1b" not in shown and "Evil<U+001B>[2Jman" in shown


def test_lookup_from_stdin_answers_each_caller_in_turn_in_one_process(cli, caller) -> None:
    typed = "8 (912) 345-67-89\n\n   \nnobody@example.org\nACC-777001\n"
    result = cli("hotline", "lookup", "-", input=typed)
    assert result.exit_code == 0, result.stderr
    answers = result.stdout.split("Ирина Петрова — account")
    assert len(answers) == 3 and "Nobody matches 'nobody@example.org'" in answers[1]  # in the order typed
    assert all("AFFECTED by: INC-1" in answer for answer in answers[1:])
    lines = cli("hotline", "lookup", "-", "--json", input=typed).stdout.splitlines()
    assert [json.loads(line)["total"] for line in lines] == [1, 0, 1]
    assert [json.loads(line)["query"] for line in lines] == ["8 (912) 345-67-89", "nobody@example.org", "ACC-777001"]


def test_lookup_from_stdin_answers_each_caller_before_the_next_is_typed(cli, caller, config_path) -> None:
    """A desk tool (or an operator) writes one line and waits: the answer must come before the
    next line is written, without PYTHONUNBUFFERED or the end of input."""
    env = {**os.environ, "NOTIFIER_CONFIG": str(config_path)}
    env.pop("PYTHONUNBUFFERED", None)
    proc = subprocess.Popen(notifier_command("hotline", "lookup", "-", "--json"), env=env, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    assert proc.stdin is not None and proc.stdout is not None
    reader = ThreadPoolExecutor(1)
    try:
        for query, total in (("8 (912) 345-67-89", 1), ("nobody@example.org", 0), ("ACC-777001", 1)):
            proc.stdin.write(query + "\n")
            proc.stdin.flush()
            try:
                answer = json.loads(reader.submit(proc.stdout.readline).result(timeout=30))
            except TimeoutError:
                pytest.fail(f"no answer to {query!r} within 30 s of typing it")
            assert (answer["query"], answer["total"]) == (query, total)
    finally:
        proc.stdin.close()  # end of input: the command ends (and the pending read returns)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        reader.shutdown()
    assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""


def test_lookup_of_nobody_suggests_what_to_do(cli) -> None:
    result = cli("hotline", "lookup", "nobody@example.org")
    assert result.exit_code == 0 and "Nobody matches" in result.stdout and "--caller PHONE" in result.stdout
    assert cli("hotline", "lookup", "nobody@example.org", "--json").json() == {
        "query": "nobody@example.org", "found": [], "total": 0
    }  # fmt: skip


def test_script_for_a_region_and_for_none(cli, caller) -> None:
    result = cli("hotline", "script", "--region", "66")
    assert result.exit_code == 0 and "== INC-1 — investigating" in result.stdout
    assert "по времени Екатеринбурга" in result.stdout
    other = cli("hotline", "script", "INC-1", "--region", "77", "--locale", "en", "--json").json()
    assert other["incidents"][0]["affects_region"] is False and "Moscow time" in other["incidents"][0]["text"]


def test_script_with_no_open_incidents(cli) -> None:
    result = cli("hotline", "script")
    assert result.exit_code == 0 and "No open incidents" in result.stdout


def test_log_with_callback_in_sets_due_time_and_lists_it(cli, caller) -> None:
    before = utcnow()
    result = cli("hotline", "log", "--subscriber", "irina@example.org", "--note", "Просит перезвонить",
                 "--callback-in", "2h", "--by", "petrova", "--json")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    data = result.json()
    due = datetime.fromisoformat(data["callback"]["due_at"])
    assert before + timedelta(hours=2) <= due <= utcnow() + timedelta(hours=2)
    assert data["incident"] == "INC-1" and data["callback"]["owner"] == "petrova"
    listed = cli("callbacks")
    assert f"#{data['callback']['id']}" in listed.stdout and "petrova" in listed.stdout
    assert "Просит перезвонить" in listed.stdout
    assert cli("callbacks", "--overdue").stdout.strip() == "No overdue callbacks."


def test_callbacks_overdue_first_and_done(cli, caller, engine, config) -> None:
    with write_session(engine) as session:
        _, late = hotline.log_call(session, config, caller_phone="+74951234567", note="Ждёт звонка",
                                   callback_in=timedelta(minutes=30), by="ivanov",
                                   now=utcnow() - timedelta(hours=1))  # fmt: skip
    cli(
        "hotline",
        "log",
        "--caller",
        "+7 495 765-43-21",
        "--note",
        "Позже",
        "--callback-in",
        "3h",
        "--by",
        "x",
    )
    listed = cli("callbacks", "--json").json()["callbacks"]
    assert [(c["id"], c["overdue"]) for c in listed] == [(late.id, True), (late.id + 1, False)]
    assert "OVERDUE" in cli("callbacks", "--overdue").stdout
    closed = cli("callbacks", "done", str(late.id), "--outcome", "Перезвонили, всё ушло")
    assert closed.exit_code == 0 and "closed (late)" in closed.stdout
    again = cli("callbacks", "done", str(late.id), "--outcome", "ещё раз")
    assert again.exit_code == 1 and "already closed" in again.stderr and again.stderr.count("\n") == 1
    assert [c["id"] for c in cli("callbacks", "--all", "--json").json()["callbacks"]] == [
        late.id + 1,
        late.id,
    ]


@pytest.mark.parametrize(
    ("args", "code", "text"),
    [
        (["callbacks", "done", "42", "--outcome", "x"], 1, "No callback by the id of 42"),
        (
            ["hotline", "log", "--caller", "+74951234567", "--note", "n", "--callback-in", "soon"],
            2,
            "--callback-in",
        ),
        (["hotline", "log", "--note", "n"], 2, "--subscriber KEY or --caller PHONE"),
        (["hotline", "log", "--caller", "12", "--note", "n"], 2, "--caller"),
        (
            [
                "hotline",
                "log",
                "--caller",
                "+74951234567",
                "--note",
                "n",
                "--callback-in",
                "1h",
                "--callback-at",
                "2030-01-01T10:00",
            ],
            2,
            "not both",
        ),  # fmt: skip
        (
            ["hotline", "log", "--caller", "+74951234567", "--note", "n", "--callback-at", "yesterday"],
            2,
            "ISO 8601",
        ),
        (["hotline", "log", "--subscriber", "ACC-404", "--note", "n"], 1, "No subscriber matches 'ACC-404'"),
        (
            ["hotline", "log", "--caller", "+74951234567", "--incident", "INC-9", "--note", "n"],
            1,
            "No incident",
        ),
        (["hotline", "script", "--region", "999"], 2, "unknown region '999'"),
        (["hotline", "lookup", "  "], 2, "give an account number"),
    ],
)
def test_mistakes_are_one_line_errors(cli, args, code, text) -> None:
    result = cli(*args)
    assert result.exit_code == code, (result.stdout, result.stderr)
    assert text in result.stderr and result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.stderr


def test_every_command_has_an_example() -> None:
    import typer.main

    from notifier.cli import app

    group = typer.main.get_command(app)
    for name in ("hotline", "callbacks"):
        command = group.commands[name]  # type: ignore[attr-defined]
        assert "Example:" in (command.help or "") or name == "hotline"
        for sub in command.commands.values():
            assert "Example:" in (sub.help or ""), (name, sub.name)
