"""The dependency direction STYLE.md asks for, checked by a tool instead of by memory:
the domain never imports the CLI, the web or the daemon; aiosmtplib and apscheduler are
each imported in one place (contracts in pyproject.toml, [tool.importlinter])."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.conftest import REPO


def test_import_contracts_are_kept() -> None:
    lint = shutil.which("lint-imports")
    if lint is None:
        pytest.skip("import-linter is not installed (pip install -e '.[test]')")
    result = subprocess.run([lint], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "0 broken" in result.stdout
