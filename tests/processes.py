"""notifier as real processes, the way a user runs it: `notifier send` and `notifier serve`
started with ``python -m notifier``, their stderr in a log file, stopped or killed by the test."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


def notifier_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "notifier", *args]


def environment(config: Any, **extra: str) -> dict[str, str]:
    return {**os.environ, "NOTIFIER_CONFIG": str(config.path), "PYTHONUNBUFFERED": "1", **extra}


def start_send(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """`notifier send --json` in the background, stderr to ``log``."""
    return subprocess.Popen(notifier_command("send", "--json"), env=env, stdout=subprocess.PIPE,
                            stderr=log.open("ab"))  # fmt: skip


def run_send(env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(notifier_command("send", "--json"), env=env, capture_output=True, text=True,
                          timeout=timeout)  # fmt: skip


def kill(proc: subprocess.Popen[Any]) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=10)


class ServeProcess:
    """`notifier serve --no-web` as a subprocess; ``log`` collects its stderr."""

    def __init__(self, config: Any, log: Path, *, env: dict[str, str] | None = None) -> None:
        self.log = log
        self.proc = subprocess.Popen(
            notifier_command("serve", "--no-web"), env=env or environment(config),
            stdout=subprocess.DEVNULL, stderr=log.open("ab"),
        )  # fmt: skip

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_started(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "notifier serve started" in self.text():
                return
            if self.proc.poll() is not None:
                raise AssertionError(f"serve exited {self.proc.returncode}: {self.text()}")
            time.sleep(0.05)
        raise AssertionError("serve did not start: " + self.text())

    def stop(self, timeout: float = 20) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def kill(self) -> None:
        kill(self.proc)
