"""`notifier templates check` and `notifier preview`, driven as a user would type them."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import notifier.cli.templates  # noqa: F401  (attaches the commands until notifier.cli imports it)
from tests.conftest import REPO, write_config

Cli = Callable[..., Any]


def broken_templates(tmp_path: Path, database_url: str, file: str, line: int, text: str) -> Path:
    """A config whose templates are a copy of the shipped ones with ``text`` appended to one line."""
    target = tmp_path / "custom-templates"
    shutil.copytree(REPO / "templates", target)
    path = target / file
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[line - 1] += text
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    directory = tmp_path / "other"
    directory.mkdir()
    return write_config(directory, database_url, notifier={"templates": str(target)})


def test_templates_check_passes_on_the_shipped_set(cli: Cli) -> None:
    result = cli("templates", "check")
    assert result.exit_code == 0
    # e-mail, SMS, hotline and internal notes (36), planned work and the subscription confirmation (52),
    # planned work's and the confirmation's SMS (8 kinds in 2 languages)
    assert result.stdout.startswith("104 templates OK")


def test_templates_check_names_file_and_line_of_an_undefined_variable(
    cli: Cli, tmp_path: Path, database_url: str
) -> None:
    config = broken_templates(tmp_path, database_url, "email/status/ru/body.txt", 9, " {{ incident.eta }}")
    result = cli("templates", "check", config=config)
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "custom-templates/email/status/ru/body.txt:9: " in lines[0] and "'eta'" in lines[0]
    assert "Traceback" not in result.stderr


def test_templates_check_names_file_and_line_of_a_syntax_error(
    cli: Cli, tmp_path: Path, database_url: str
) -> None:
    config = broken_templates(
        tmp_path, database_url, "email/apology/en/body.html", 15, "{% if reader.name %}"
    )
    result = cli("templates", "check", config=config)
    assert result.exit_code == 1
    assert "custom-templates/email/apology/en/body.html:" in result.stderr
    assert "endif" in result.stderr  # Jinja's own explanation of what is missing


def test_commands_have_an_example_in_their_help(cli: Cli) -> None:
    assert "Example: notifier templates check" in cli("templates", "check", "--help").stdout
    assert "Example: notifier preview" in cli("preview", "--help").stdout


def declare_and_resolve(cli: Cli) -> None:
    assert cli("incident", "declare", "--title", "Не отправляются отчёты в ФНС", "--region", "66",
               "--region", "54", "--service", "tax-reporting", "--started-at", "2026-03-01T17:40:00Z",
               "--message", "Разбираемся с сервером базы данных.").exit_code == 0  # fmt: skip
    assert cli("incident", "update", "INC-1", "--status", "identified",
               "--message", "Причина найдена, переключаемся на резервный сервер.").exit_code == 0  # fmt: skip
    assert cli("incident", "resolve", "INC-1", "--cause", "Отказал основной сервер базы данных.",
               "--measures", "Работу перевели на резервный сервер и исправили его настройку.",
               "--compensation", "14d", "--resolved-at", "2026-03-01T22:15:00Z").exit_code == 0  # fmt: skip


def test_preview_prints_the_apology_a_subscriber_would_get(
    cli: Cli, make_subscriber: Callable[..., Any]
) -> None:
    make_subscriber(external_id="ACC-7", name="Ольга Смирнова", email="Olga@Example.org", region="54")
    declare_and_resolve(cli)
    result = cli("preview", "INC-1", "--kind", "apology", "--subscriber", "olga@example.org")
    assert result.exit_code == 0, result.stderr
    out = result.stdout.replace("\xa0", " ")
    assert out.startswith("Subject: Приносим извинения за сбой 2 марта")
    assert "Здравствуйте, Ольга Смирнова!" in out
    assert "Отказал основной сервер базы данных." in out
    assert "Работу перевели на резервный сервер и исправили его настройку." in out
    # Novosibirsk is UTC+7: the outage was one night, 00:40 to 05:15.
    assert "2 марта 2026 г. с 00:40 до 05:15 по времени Новосибирска (4 ч 35 мин)" in out
    assert "14 дней бесплатного обслуживания" in out


def test_preview_without_a_subscriber_uses_a_sample_one_in_the_first_region(cli: Cli) -> None:
    declare_and_resolve(cli)
    result = cli("preview", "INC-1", "--kind", "apology", "--locale", "en")
    assert result.exit_code == 0, result.stderr
    assert "from 22:40 on March 1 to 03:15 on March 2, 2026, Yekaterinburg time (4 h 35 min)" in result.stdout
    assert "Sverdlovsk Oblast" in result.stdout


def test_preview_html_is_the_html_part(cli: Cli, make_subscriber: Callable[..., Any]) -> None:
    make_subscriber(external_id="ACC-9", name="<b>Bold</b>", locale="en", region="66")
    declare_and_resolve(cli)
    result = cli("preview", "INC-1", "--kind", "apology", "--subscriber", "acc-9", "--html")
    assert result.exit_code == 0, result.stderr
    assert '<html lang="en">' in result.stdout
    assert "Dear &lt;b&gt;Bold&lt;/b&gt;," in result.stdout


def test_preview_status_announces_the_latest_update(cli: Cli, make_subscriber: Callable[..., Any]) -> None:
    make_subscriber(phone="+79120001122", region="66")
    declare_and_resolve(cli)
    result = cli("preview", "INC-1", "--kind", "status", "--subscriber", "8 912 000-11-22")
    assert result.exit_code == 0, result.stderr
    assert "Причина найдена, переключаемся на резервный сервер." in result.stdout
    assert "Разбираемся с сервером" not in result.stdout


def test_preview_hotline_is_plain_text(cli: Cli) -> None:
    declare_and_resolve(cli)
    result = cli("preview", "INC-1", "--kind", "hotline")
    assert result.exit_code == 0
    assert "Причина: Отказал основной сервер базы данных." in result.stdout
    assert cli("preview", "INC-1", "--kind", "hotline", "--html").exit_code == 2


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        (["INC-9", "--kind", "apology"], 1, "No incident by the id of 'INC-9'"),
        (["INC-1", "--kind", "apology", "--subscriber", "nobody@example.org"], 1, "No subscriber matches"),
        (["INC-1", "--kind", "letter"], 2, "--kind must be one of status, apology, hotline"),
        (["INC-1", "--kind", "status", "--locale", "de"], 2, "--locale must be one of ru, en"),
    ],
)
def test_preview_mistakes_are_one_line(cli: Cli, args: list[str], code: int, says: str) -> None:
    declare_and_resolve(cli)
    result = cli("preview", *args)
    assert result.exit_code == code
    assert says in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_preview_of_an_apology_before_resolution_explains_why_not(cli: Cli) -> None:
    cli("incident", "declare", "--title", "Сбой", "--region", "66")
    result = cli("preview", "INC-1", "--kind", "apology")
    assert result.exit_code == 2
    assert "INC-1 is not resolved yet" in result.stderr
