"""`notifier incident …` driven as a user types it: outputs, JSON, and one-line errors."""

from __future__ import annotations

import pytest


def test_declare_json_and_human_share(cli, make_subscriber) -> None:
    for _ in range(3):
        make_subscriber(region="66")
    make_subscriber(region="77")
    result = cli("incident", "declare", "--title", "Отчёты не уходят", "--region", "66", "--service", "tax-reporting", "--json")
    assert result.exit_code == 0, result.stderr
    data = result.json()
    assert data["id"] == "INC-1" and data["affected"] == 3 and data["queued"] == {"status": 3, "hotline": 1}
    assert data["share_percent"] == 75.0
    human = cli("incident", "declare", "--title", "Второй сбой", "--region", "77", "--region", "66")
    assert "INC-2" in human.stdout and "4 subscribers affected, 100.0 % of 4 active" in human.stdout


def test_full_lifecycle_via_cli(cli, make_subscriber) -> None:
    make_subscriber(region="66")
    assert cli("incident", "declare", "--title", "Сбой", "--region", "66", "--by", "ivanov").exit_code == 0
    upd = cli("incident", "update", "INC-1", "--status", "identified", "--message", "Отказал сервер БД", "--json")
    assert upd.json()["status"] == "identified" and upd.json()["queued"] == {"status": 1, "hotline": 1}
    held = cli("incident", "resolve", "INC-1", "--cause", "Отказ диска")
    assert "HELD" in held.stdout and "notifier incident edit INC-1" in held.stdout
    released = cli("incident", "edit", "INC-1", "--measures", "Новый кластер", "--json")
    assert released.json()["apology"] == "queued" and released.json()["queued"]["apology"] == 1
    shown = cli("incident", "show", "INC-1", "--json").json()
    assert [e["kind"] for e in shown["timeline"]] == ["declared", "update", "resolved", "edit"]
    assert shown["timeline"][0]["by"] == "ivanov"
    listed = cli("incident", "list", "--json").json()
    assert listed["incidents"][0]["status"] == "resolved"


def test_errors_are_one_line_with_nonzero_exit(cli) -> None:
    cases = [
        (["incident", "declare", "--title", "X", "--region", "99"], 2, "unknown region '99'"),
        (["incident", "update", "INC-7", "--status", "identified", "--message", "m"], 1, "No incident by the id of 'INC-7'"),
        (["incident", "update", "garbage", "--status", "identified", "--message", "m"], 1, "No incident"),
        (["incident", "declare", "--title", "X", "--region", "66", "--started-at", "yesterday"], 2, "ISO 8601"),
        (["incident", "scope", "INC-1"], 1, "No incident"),
    ]
    for args, code, text in cases:
        result = cli(*args)
        assert result.exit_code == code, (args, result.stdout, result.stderr)
        assert text in result.stderr and result.stderr.count("\n") == 1, result.stderr
        assert "Traceback" not in result.stderr


def test_missing_required_option_is_a_usage_error(cli) -> None:
    result = cli("incident", "declare", "--region", "66")
    assert result.exit_code == 2 and "--title" in result.stderr


def test_declare_refuses_to_queue_while_a_template_is_broken(cli, config_path, make_subscriber, tmp_path) -> None:
    import shutil

    from notifier.config import load_config
    from tests.conftest import REPO, write_config

    make_subscriber(region="66")
    broken = tmp_path / "tpl"
    shutil.copytree(REPO / "templates", broken)
    body = broken / "email" / "status" / "ru" / "body.txt"
    body.write_text(body.read_text(encoding="utf-8") + "\n{{ no_such_variable }}\n", encoding="utf-8")
    (tmp_path / "cfg").mkdir()
    path = write_config(tmp_path / "cfg", load_config(config_path).notifier.database, notifier={"templates": str(broken)})

    result = cli("incident", "declare", "--title", "Сбой", "--region", "66", config=path)
    assert result.exit_code == 1
    assert "email/status/ru/body.txt" in result.stderr and "no_such_variable" in result.stderr
    assert cli("incident", "list", "--json", config=path).json()["incidents"] == []


@pytest.mark.parametrize("broken_kind", ["email/status/ru/body.txt", "hotline/ru/body.txt"])
def test_scope_refuses_to_queue_while_a_template_is_broken(cli, config_path, make_subscriber, tmp_path, broken_kind) -> None:
    import shutil

    from notifier.config import load_config
    from tests.conftest import REPO, write_config

    make_subscriber(region="66")
    make_subscriber(region="74")
    assert cli("incident", "declare", "--title", "Сбой", "--region", "66").exit_code == 0
    broken = tmp_path / "tpl"
    shutil.copytree(REPO / "templates", broken)
    body = broken / broken_kind
    body.write_text(body.read_text(encoding="utf-8") + "\n{{ no_such_variable }}\n", encoding="utf-8")
    (tmp_path / "cfg").mkdir()
    path = write_config(tmp_path / "cfg", load_config(config_path).notifier.database, notifier={"templates": str(broken)})

    result = cli("incident", "scope", "INC-1", "--add-region", "74", config=path)
    assert result.exit_code == 1 and broken_kind in result.stderr and "no_such_variable" in result.stderr
    shown = cli("incident", "show", "INC-1", "--json", config=path).json()
    assert shown["regions"] == ["66"]  # nothing changed, nothing queued
