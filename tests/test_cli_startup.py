"""Start-up stays fast because `notifier --help` imports nothing heavy: typer builds the command
tree from the commands' signatures, and each command imports the domain when it runs. Checked
by the modules a fresh interpreter holds, not by a stopwatch (benchmarks/startup.py times it)."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import REPO

HEAVY = ("sqlalchemy", "sqlmodel", "pydantic", "jinja2", "babel", "aiosmtplib", "apscheduler", "fastapi",
         "phonenumbers", "email_validator", "httpx", "rich", "alembic", "prometheus_client")  # fmt: skip


def loaded_after(code: str) -> set[str]:
    probe = f"import sys, json\n{code}\nprint(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}})))"
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_the_command_tree_imports_nothing_heavy() -> None:
    loaded = loaded_after("import notifier.cli")
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


def test_help_lists_every_command_group_without_importing_the_domain() -> None:
    code = ("from typer.main import get_command\nfrom notifier.cli import app\nimport click\n"
            "ctx = click.Context(get_command(app))\nprint(get_command(app).get_help(ctx), file=sys.stderr)")  # fmt: skip
    loaded = loaded_after(code)
    assert not loaded & set(HEAVY) - {"rich"}, sorted(loaded & set(HEAVY))
    help_text = subprocess.run([sys.executable, "-m", "notifier", "--help"], cwd=REPO, capture_output=True,
                               text=True, timeout=60).stdout  # fmt: skip
    for group in ("incident", "subscribers", "hotline", "send", "serve", "maintenance", "sms", "templates"):
        assert group in help_text


def test_rendering_and_incidents_load_no_calendar_rate_limiter_or_import_machinery() -> None:
    # `incident show/update` and the hotline's script render texts; the calendar, the web's rate
    # limiter and the CSV import's validators are loaded only by the commands that use them.
    loaded = loaded_after("import notifier.incidents, notifier.rendering")
    assert not loaded & {"icalendar", "limits", "email_validator", "phonenumbers", "fastapi"}, sorted(loaded)
