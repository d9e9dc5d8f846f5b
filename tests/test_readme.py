"""Docs that can't drift: the README names every command, and every command has an example."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import typer.main

from notifier.cli import app
from tests.conftest import REPO


def _commands(command: Any, path: list[str]) -> Iterator[tuple[str, Any]]:
    children = getattr(command, "commands", None)
    if children:
        for name, child in children.items():
            yield from _commands(child, [*path, name])
    else:
        yield " ".join(path), command


COMMANDS = list(_commands(typer.main.get_command(app), ["notifier"]))


def test_the_cli_has_the_commands_the_spec_promises() -> None:
    names = {name for name, _ in COMMANDS}
    for expected in ["notifier init", "notifier subscribers import", "notifier incident declare",
                     "notifier incident resolve", "notifier preview", "notifier send", "notifier outbox",
                     "notifier report", "notifier templates check", "notifier sink", "notifier demo"]:  # fmt: skip
        assert expected in names


def test_readme_mentions_every_command() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    missing = [name for name, _ in COMMANDS if f"`{name}" not in readme and f"{name} " not in readme]
    assert missing == []


def test_every_command_has_help_with_an_example() -> None:
    lacking = [name for name, command in COMMANDS if "Example:" not in (command.help or "")]
    assert lacking == []


def test_readme_starts_with_the_two_commands() -> None:
    head = (REPO / "README.md").read_text(encoding="utf-8")[:1500]
    assert "notifier demo" in head and "pytest" in head
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert "python3 -m pytest" in ci and "python3 -m pytest" in head
