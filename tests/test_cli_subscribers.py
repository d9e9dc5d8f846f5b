"""`notifier subscribers …` driven as a user would type it."""

from __future__ import annotations

import csv
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


# Bad input: one line, nothing lost ---------------------------------------------------------------


def test_a_malformed_row_is_reported_by_line_and_the_rest_imported(cli, tmp_path):
    path = csv_file(tmp_path, HEADER, GOOD[0], 'Q1,"bad"quote,q@example.org,,77,edo,ru', GOOD[1],
                    'Q2,"unterminated,u@example.org,,77,edo,ru', GOOD[2], 'Q3,"two\nlines",t@example.org,,77,edo,ru')  # fmt: skip
    result = cli("subscribers", "import", str(path))
    assert result.exit_code == 1 and "Traceback" not in result.stdout + result.stderr
    assert "3 new, 0 updated, 0 unchanged, 3 rejected" in result.stdout
    assert "line 3: not valid CSV: text follows the closing quote" in result.stdout
    assert 'line 5: not valid CSV: a quote (") opens a field that is never closed' in result.stdout
    assert "lines 7–8: name contains a control character" in result.stdout
    assert cli("subscribers", "count", "--json").json() == {"count": 3}


def test_trailing_blank_lines_are_not_rejected_rows(cli, tmp_path):
    result = cli("subscribers", "import", str(csv_file(tmp_path, HEADER, *GOOD, "", "", "")))
    assert result.exit_code == 0 and "3 new, 0 updated, 0 unchanged, 0 rejected" in result.stdout


@pytest.mark.parametrize("target", ["input", "config"])
def test_errors_path_that_would_destroy_data_is_refused(cli, tmp_path, config, target):
    _refused_errors_path(cli, tmp_path, config, target)


@pytest.mark.parametrize("backend", ["sqlite"])  # only SQLite keeps the database in a file
@pytest.mark.parametrize("target", ["database", "wal"])
def test_errors_path_onto_the_database_file_is_refused(cli, tmp_path, config, target, backend):
    _refused_errors_path(cli, tmp_path, config, target)


def _refused_errors_path(cli, tmp_path, config, target):
    path = csv_file(tmp_path, HEADER, *GOOD)
    database = Path(config.database_url.removeprefix("sqlite:///"))
    errors = {"input": path, "database": database, "config": config.path,
              "wal": database.with_name(database.name + "-wal")}[target]  # fmt: skip
    before = errors.read_bytes() if errors.exists() else None
    result = cli("subscribers", "import", str(path), "--errors", str(errors), "--force")
    assert (
        result.exit_code == 2
        and result.stderr.count("\n") == 1
        and result.stderr.startswith("error: --errors")
    )
    after = errors.read_bytes() if errors.exists() else None
    assert after == before or (target == "wal" and b"line,reason" not in after)
    assert cli("subscribers", "count", "--json").json() == {"count": 0}  # still a working database


def test_errors_file_replaces_only_an_earlier_errors_file_unless_forced(cli, tmp_path):
    path = csv_file(tmp_path, HEADER, GOOD[0], "ACC-9,Bad,,,77,edo,ru")
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n", encoding="utf-8")
    refused = cli("subscribers", "import", str(path), "--errors", str(notes))
    assert refused.exit_code == 2 and "--force" in refused.stderr and notes.read_text() == "my notes\n"
    errors = tmp_path / "rejected.csv"
    assert cli("subscribers", "import", str(path), "--errors", str(errors)).exit_code == 1
    again = cli("subscribers", "import", str(path), "--errors", str(errors))  # an earlier errors file
    assert again.exit_code == 1 and errors.read_text().count("\n") == 2
    forced = cli("subscribers", "import", str(path), "--errors", str(notes), "--force")
    assert forced.exit_code == 1 and notes.read_text().startswith(HEADER + ",line,reason")


def test_the_errors_file_neutralises_formulas(cli, tmp_path):
    path = csv_file(tmp_path, HEADER, '=HYPERLINK("http://evil.example"),"=cmd|\' /C calc\'!A0",,,77,edo,ru')
    errors = tmp_path / "rejected.csv"
    cli("subscribers", "import", str(path), "--errors", str(errors))
    row = list(csv.reader(errors.open(encoding="utf-8", newline="")))[1]
    assert row[:2] == ['\'=HYPERLINK("http://evil.example")', "'=cmd|' /C calc'!A0"]


def test_one_email_under_two_account_numbers_is_warned_about(cli, tmp_path):
    path = csv_file(tmp_path, HEADER, "ACC-1,Один,shared@example.org,,77,edo,ru", GOOD[1],
                    "ACC-5,Два,SHARED@example.org,,77,edo,ru")  # fmt: skip
    result = cli("subscribers", "import", str(path))
    assert result.exit_code == 0
    assert ("warning: e-mail shared@example.org is given to 2 account numbers: ACC-1 (line 2), "
            "ACC-5 (line 4)") in result.stdout  # fmt: skip
    data = cli("subscribers", "import", str(path), "--json").json()
    assert data["shared_mailboxes"] == 1 and data["warnings"][0]["accounts"][0] == {
        "external_id": "ACC-1",
        "line": 2,
    }


def test_add_without_a_service(cli):
    result = cli("subscribers", "add", "--name", "Без услуг", "--email", "n@example.org", "--region", "77")
    assert result.exit_code == 0, result.stderr
    assert "[]" in result.stdout and "unknown service" not in result.stderr


@pytest.mark.parametrize(("option", "value"), [("--limit", "99999999999999999999"), ("--limit", "-1"),
                                               ("--limit", "0"), ("--offset", "-5")])  # fmt: skip
def test_list_bounds_are_one_line(cli, option, value):
    result = cli("subscribers", "list", option, value)
    assert result.exit_code == 2 and result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"error: {option} must be between")


def test_a_look_alike_e_mail_domain_is_listed_in_punycode(cli):
    cli("subscribers", "add", "--name", "Apple", "--email", "billing@xn--80ak6aa92e.com", "--region", "77")
    cli("subscribers", "add", "--name", "Почта", "--email", "info@почта.рф", "--region", "77")
    listed = cli("subscribers", "list").stdout
    assert "billing@xn--80ak6aa92e.com" in listed and "аррӏе" not in listed
    assert "info@почта.рф" in listed


def test_names_stored_before_the_rules_cannot_drive_the_terminal(cli, make_subscriber):
    make_subscriber(name="Evil\x1b[2J\x9b31m\u202eeman", email="e@example.org")
    listed = cli("subscribers", "list").stdout
    assert "\x1b" not in listed and "\x9b" not in listed and "\u202e" not in listed
    assert "Evil<U+001B>[2J<U+009B>31m<U+202E>eman" in listed
    as_json = cli("subscribers", "list", "--json")
    assert "\x9b" not in as_json.stdout and "\u202e" not in as_json.stdout
    assert as_json.json()["subscribers"][0]["name"] == "Evil\x1b[2J\x9b31m\u202eeman"
