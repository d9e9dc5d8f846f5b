"""`notifier subscribers …` driven as a user would type it."""

from __future__ import annotations

from pathlib import Path

import pytest

HEADER = "external_id,name,email,phone,region,services,locale"
GOOD = [
    "ACC-1,Иванова Мария,maria@example.org,8 (912) 345-67-89,77,tax-reporting,ru",
    "ACC-2,Petrov Petr,petrov@example.org,+79123456702,66,tax-reporting;edo,en",
    "ACC-3,Сидоров,,+7 912 345 67 03,66,edo,",
]


def csv_file(tmp_path: Path, *lines: str, name: str = "subs.csv") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_import_prints_summary_and_exits_0(cli, tmp_path):
    result = cli("subscribers", "import", str(csv_file(tmp_path, HEADER, *GOOD)))
    assert result.exit_code == 0, result.stderr
    assert "3 new, 0 updated, 0 unchanged, 0 rejected" in result.stdout


def test_reimport_reports_unchanged_and_count_stays(cli, tmp_path):
    path = csv_file(tmp_path, HEADER, *GOOD)
    cli("subscribers", "import", str(path))
    again = cli("subscribers", "import", str(path), "--json")
    assert again.exit_code == 0
    assert {k: again.json()[k] for k in ("inserted", "updated", "unchanged", "rejected")} == {
        "inserted": 0, "updated": 0, "unchanged": 3, "rejected": 0,
    }  # fmt: skip
    assert cli("subscribers", "count", "--json").json() == {"count": 3}


def test_rejected_rows_are_listed_with_line_numbers_and_exit_1(cli, tmp_path):
    path = csv_file(
        tmp_path, HEADER, GOOD[0], "ACC-9,Bad,,,77,edo,ru", GOOD[1], "ACC-8,Bad,x@example.org,,99,edo,ru"
    )
    result = cli("subscribers", "import", str(path))
    assert result.exit_code == 1
    assert "2 new, 0 updated, 0 unchanged, 2 rejected" in result.stdout
    assert "line 3: needs an e-mail or a phone" in result.stdout
    assert "line 5: unknown region '99'" in result.stdout
    assert cli("subscribers", "count", "--json").json() == {"count": 2}


def test_more_than_20_rejections_are_summarised_and_errors_file_has_them_all(cli, tmp_path):
    bad = [f"ACC-{n},Bad,,,77,edo,ru" for n in range(25)]
    errors = tmp_path / "rejected.csv"
    result = cli("subscribers", "import", str(csv_file(tmp_path, HEADER, *bad)), "--errors", str(errors))
    assert result.exit_code == 1
    assert "line 21:" in result.stdout and "line 22:" not in result.stdout
    assert f"… and 5 more; see {errors}" in result.stdout
    lines = errors.read_text(encoding="utf-8").splitlines()
    assert lines[0] == HEADER + ",line,reason"
    assert len(lines) == 26
    assert lines[1] == "ACC-0,Bad,,,77,edo,ru,2,needs an e-mail or a phone (both are empty)"


def test_import_json_lists_rejections(cli, tmp_path):
    path = csv_file(tmp_path, HEADER, GOOD[0], "ACC-9,Bad,bad@,,77,edo,ru")
    data = cli("subscribers", "import", str(path), "--json").json()
    assert (data["inserted"], data["rejected"]) == (1, 1)
    assert data["rejections"][0]["line"] == 3 and "bad@" in data["rejections"][0]["reason"]


def test_bad_header_is_one_line_error_exit_2(cli, tmp_path):
    result = cli("subscribers", "import", str(csv_file(tmp_path, "id,name,email", "1,a,b@example.org")))
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    assert (
        "missing columns external_id, phone, region, services, locale; unknown column 'id'" in result.stderr
    )
    assert "Traceback" not in result.stderr + result.stdout


def test_nonexistent_file_is_one_line_error_exit_2(cli, tmp_path):
    result = cli("subscribers", "import", str(tmp_path / "nope.csv"))
    assert result.exit_code == 2
    assert result.stderr == f"error: {tmp_path / 'nope.csv'}: no such file\n"


def test_add_then_find_by_phone_in_another_format(cli):
    added = cli("subscribers", "add", "--external-id", "ACC-7", "--name", "Ольга Кузнецова", "--email",
                "Olga@Example.org", "--phone", "8 912 345-67-07", "--region", "54", "--service", "edo",
                "--service", "tax-reporting", "--json")  # fmt: skip
    assert added.exit_code == 0, added.stderr
    assert added.json()["phone"] == "+79123456707" and added.json()["services"] == ["edo", "tax-reporting"]
    found = cli("subscribers", "find", "+7 (912) 3456707", "--json").json()["subscribers"]
    assert [s["external_id"] for s in found] == ["ACC-7"]
    assert "ACC-7" in cli("subscribers", "find", "КУЗНЕЦОВА").stdout


def test_add_with_bad_value_is_one_line_error(cli):
    result = cli("subscribers", "add", "--email", "x@example.org", "--region", "77", "--locale", "fr")
    assert result.exit_code == 2
    assert result.stderr == "error: locale must be one of ru, en, not 'fr'\n"


def test_find_nothing_exits_1(cli, tmp_path):
    cli("subscribers", "import", str(csv_file(tmp_path, HEADER, *GOOD)))
    result = cli("subscribers", "find", "nobody-like-this")
    assert result.exit_code == 1 and "Nobody matches" in result.stdout


def test_count_by_region_and_service(cli, tmp_path):
    cli("subscribers", "import", str(csv_file(tmp_path, HEADER, *GOOD)))
    assert cli("subscribers", "count", "--region", "66", "--json").json() == {"count": 2}
    assert cli("subscribers", "count", "--region", "66", "--service", "tax-reporting", "--json").json() == {
        "count": 1
    }
    assert cli("subscribers", "count", "--region", "77", "--region", "66", "--json").json() == {"count": 3}
    assert cli("subscribers", "count", "--service", "statistics").stdout.strip() == "0"
    bad = cli("subscribers", "count", "--region", "99")
    assert bad.exit_code == 2 and "unknown region '99'" in bad.stderr


def test_unsubscribe_twice_and_reimport_keeps_it_unsubscribed(cli, tmp_path):
    path = csv_file(tmp_path, HEADER, *GOOD)
    cli("subscribers", "import", str(path))
    first = cli("subscribers", "unsubscribe", "MARIA@example.org")
    assert first.exit_code == 0 and "ACC-1 is unsubscribed" in first.stdout
    assert cli("subscribers", "unsubscribe", "ACC-1", "--json").json()["status"] == "unsubscribed"
    cli("subscribers", "import", str(path))
    listed = cli("subscribers", "list", "--status", "unsubscribed", "--json").json()["subscribers"]
    assert [s["external_id"] for s in listed] == ["ACC-1"]
    assert cli("subscribers", "count", "--json").json() == {"count": 2}
    missing = cli("subscribers", "unsubscribe", "ACC-404")
    assert missing.exit_code == 1 and "No subscriber matches 'ACC-404'" in missing.stderr


def test_list_filters(cli, tmp_path):
    cli("subscribers", "import", str(csv_file(tmp_path, HEADER, *GOOD)))
    listed = cli("subscribers", "list", "--region", "66", "--service", "edo", "--json").json()["subscribers"]
    assert [s["external_id"] for s in listed] == ["ACC-2", "ACC-3"]
    text = cli("subscribers", "list", "--limit", "1").stdout
    assert "ACC-1" in text and "ACC-2" not in text
    bad = cli("subscribers", "list", "--status", "gone")
    assert bad.exit_code == 2 and "status must be one of" in bad.stderr


@pytest.mark.parametrize("command", ["import", "add", "list", "count", "find", "unsubscribe"])
def test_every_command_has_help_with_an_example(cli, command):
    result = cli("subscribers", command, "--help")
    assert result.exit_code == 0 and "Example: notifier subscribers " + command in result.stdout
