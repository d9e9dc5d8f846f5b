"""Config validation: every mistake is one line naming the key, and exit code 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from notifier.config import load_config
from notifier.errors import ConfigError
from tests.conftest import REPO

SHIPPED = (REPO / "config.toml").read_text(encoding="utf-8")


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _error(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, text))
    message = str(info.value)
    assert "\n" not in message
    return message


def test_shipped_config_is_a_working_example() -> None:
    config = load_config(REPO / "config.toml")
    assert len(config.regions) >= 12
    assert len({r.timezone for r in config.regions.values()}) >= 4
    assert config.regions["66"].timezone == "Asia/Yekaterinburg"
    assert config.regions["77"].name.get("ru") == "Москва"
    assert "tax-reporting" in config.services
    assert config.database_url == f"sqlite:///{REPO / 'notifier.db'}"


def test_unknown_key_is_named(tmp_path: Path) -> None:
    message = _error(tmp_path, SHIPPED.replace("port = 1025", "port = 1025\nprot = 25"))
    assert "unknown key [smtp].prot" in message


def test_bad_time_zone_is_named(tmp_path: Path) -> None:
    message = _error(tmp_path, SHIPPED.replace('"Asia/Omsk"', '"Asia/Omskk"'))
    assert "[regions].55.timezone" in message and "Asia/Omskk" in message


def test_missing_section_is_named(tmp_path: Path) -> None:
    start = SHIPPED.index("[smtp]")
    end = SHIPPED.index("[mailing]")
    message = _error(tmp_path, SHIPPED[:start] + SHIPPED[end:])
    assert "missing section [smtp]" in message


def test_bad_database_url_is_named(tmp_path: Path) -> None:
    message = _error(tmp_path, SHIPPED.replace('"sqlite:///notifier.db"', '"mysql://x/y"'))
    assert "[notifier].database" in message


def test_bad_public_url_is_named(tmp_path: Path) -> None:
    message = _error(tmp_path, SHIPPED.replace('"http://127.0.0.1:8080"', '"status page"'))
    assert "[notifier].public_base_url" in message


def test_bad_duration_is_named(tmp_path: Path) -> None:
    message = _error(tmp_path, SHIPPED.replace('apology_delay = "0s"', 'apology_delay = "soon"'))
    assert "[mailing].apology_delay" in message and "soon" in message


def test_compensation_rule_above_cap_is_refused(tmp_path: Path) -> None:
    message = _error(tmp_path, SHIPPED.replace("days = 30 }", "days = 90 }"))
    assert "cap_days" in message


def test_not_toml_is_one_line(tmp_path: Path) -> None:
    assert "not valid TOML" in _error(tmp_path, "[notifier\nfoo = ")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "nope.toml")


def test_password_comes_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = load_config(_write(tmp_path, SHIPPED.replace('password_env = ""', 'password_env = "SMTP_PW"')))
    monkeypatch.delenv("SMTP_PW", raising=False)
    with pytest.raises(ConfigError, match="SMTP_PW"):
        config.smtp.password()
    monkeypatch.setenv("SMTP_PW", "s3cret")
    assert config.smtp.password() == "s3cret"


def test_cli_reports_config_mistake_in_one_line_with_exit_2(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from notifier.cli import app

    path = _write(tmp_path, SHIPPED.replace("port = 1025", "port = 'abc'"))
    result = CliRunner().invoke(app, ["--config", str(path), "incident", "list"])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ") and "[smtp].port" in result.stderr
    assert result.stderr.count("\n") == 1
    assert "Traceback" not in result.output


@pytest.mark.parametrize("value", ['"99999999999d"', "inf", "-inf", "nan", "1e300", "99999999999999999999",
                                   '"1e300"', '"3651d"', "-5"])  # fmt: skip
def test_absurd_durations_are_one_line_naming_the_key(tmp_path: Path, value: str) -> None:
    message = _error(tmp_path, SHIPPED.replace('apology_delay = "0s"', f"apology_delay = {value}"))
    assert message.startswith(f"{tmp_path / 'config.toml'}: [mailing].apology_delay: ")


def test_long_but_sane_durations_are_accepted(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, SHIPPED.replace('apology_delay = "0s"', 'apology_delay = "3650d"')))
    assert config.mailing.apology_delay.days == 3650


def test_an_unsupported_database_url_says_which_are_supported(tmp_path: Path) -> None:
    message = _error(tmp_path, SHIPPED.replace('"sqlite:///notifier.db"', '"mysql://root:hunter2@db/x"'))
    assert "mysql:// is not a supported database; use sqlite:///PATH (a file) or postgresql://" in message
    assert "hunter2" not in message


def _cli(path: Path, *args: str, env: dict[str, str] | None = None) -> object:
    from typer.testing import CliRunner

    from notifier.cli import app

    return CliRunner().invoke(app, ["--config", str(path), *args], env=env)


@pytest.mark.parametrize("url", ["mysql://x", "postgresql+psycopg2://u@h/d", "sqlite://", "notifier.db"])
def test_notifier_database_url_that_cannot_work_is_one_line(tmp_path: Path, url: str) -> None:
    result = _cli(_write(tmp_path, SHIPPED), "incident", "list", env={"NOTIFIER_DATABASE_URL": url})
    assert result.exit_code == 2 and result.stderr.count("\n") == 1, result.output
    assert result.stderr.startswith("error: NOTIFIER_DATABASE_URL: ")
    assert "sqlite:///PATH (a file) or postgresql://USER@HOST/DATABASE" in result.stderr


def test_a_database_file_that_is_not_sqlite_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "notifier.db").write_text("external_id,name,line,reason\nA,B,2,bad\n", encoding="utf-8")
    for command in (["incident", "list"], ["init"], ["subscribers", "count"]):
        result = _cli(_write(tmp_path, SHIPPED), *command)
        assert result.exit_code == 1 and result.stderr.count("\n") == 1, result.output
        assert "is not a SQLite database" in result.stderr and "Traceback" not in result.output
