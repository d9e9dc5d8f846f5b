"""DKIM: `notifier dkim keygen` and the signer built from config; every signature is checked
by dkimpy's verifier against the public key parsed from the TXT record the command printed."""

from __future__ import annotations

import re
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dkim
import pytest

from notifier.config import load_config
from notifier.delivery.dkim import signer_from_config
from notifier.errors import ConfigError
from tests.conftest import write_config

LETTER = (
    b"From: =?utf-8?b?0KHRhNC10YDQsA==?= <noreply@sfera-reporting.example>\r\nTo: client@example.org\r\n"
    b"Subject: =?utf-8?b?0J/RgNC40L3QvtGB0LjQvCDQuNC30LLQuNC90LXQvdC40Y8=?=\r\n"
    b"Date: Tue, 01 Dec 2026 14:10:00 +0000\r\nMessage-ID: <notifier.7.0f3a@sfera-reporting.example>\r\n"
    b"List-Unsubscribe: <https://status.example/u/t>\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
    b"List-Id: <incidents.sfera-reporting.example>\r\nFeedback-ID: apology:notifier\r\nMIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    b"0JfQtNGA0LDQstGB0YLQstGD0LnRgtC1IQ==\r\n"
)


@pytest.fixture
def backend() -> str:
    """Keys and signatures do not touch the database: SQLite alone is enough here."""
    return "sqlite"


def txt_record(stdout: str) -> tuple[str, bytes]:
    """(name, record) from keygen's output, as an operator would copy them into DNS."""
    name = re.search(r"Publish this TXT record at (\S+):", stdout)
    record = re.search(r"^(v=DKIM1; k=rsa; p=[A-Za-z0-9+/=]+)$", stdout, re.MULTILINE)
    assert name and record, stdout
    return name.group(1), record.group(1).encode()


def dns_for(name: str, record: bytes) -> Callable[..., bytes | None]:
    def lookup(qname: bytes, timeout: int = 5) -> bytes | None:
        return record if qname.decode().rstrip(".") == name else None

    return lookup


@pytest.fixture
def keys(cli: Callable[..., Any], tmp_path: Path) -> tuple[Path, str, bytes]:
    result = cli(
        "dkim",
        "keygen",
        "--selector",
        "s2026",
        "--domain",
        "sfera-reporting.example",
        "--out",
        str(tmp_path / "dkim"),
    )
    assert result.exit_code == 0, result.stderr
    name, record = txt_record(result.stdout)
    return tmp_path / "dkim" / "s2026.private.pem", name, record


def test_keygen_writes_a_private_key_only_its_owner_reads_and_prints_the_record(
    keys: tuple[Path, str, bytes], cli: Callable[..., Any], tmp_path: Path
) -> None:
    private, name, record = keys
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert (private.parent / "s2026.public.pem").read_text().startswith("-----BEGIN PUBLIC KEY-----")
    assert name == "s2026._domainkey.sfera-reporting.example"
    again = cli(
        "dkim",
        "keygen",
        "--selector",
        "s2026",
        "--domain",
        "sfera-reporting.example",
        "--out",
        str(private.parent),
    )
    assert again.exit_code == 2 and "already exists" in again.stderr
    bad = cli("dkim", "keygen", "--selector", "s 1", "--domain", "x.example", "--out", str(tmp_path))
    assert bad.exit_code == 2 and bad.stderr.startswith("error: --selector")


@pytest.mark.parametrize("from_env", [False, True])
def test_a_signed_message_verifies_against_the_published_record(
    keys: tuple[Path, str, bytes],
    tmp_path: Path,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    from_env: bool,
) -> None:
    private, name, record = keys
    source = (
        {"dkim_key_env": "NOTIFIER_DKIM_KEY"} if from_env else {"dkim_key_file": "dkim/s2026.private.pem"}
    )
    if from_env:
        monkeypatch.setenv("NOTIFIER_DKIM_KEY", private.read_text())
    path = write_config(
        tmp_path,
        database_url,
        smtp={"dkim_domain": "sfera-reporting.example", "dkim_selector": "s2026", **source},
    )
    signer = signer_from_config(load_config(path))
    assert signer is not None
    signed = signer.sign(LETTER)
    assert (
        signed.endswith(LETTER)
        and signed.startswith(b"DKIM-Signature: ")
        and b"\n" not in signed.replace(b"\r\n", b"")
    )
    assert dkim.verify(signed, dnsfunc=dns_for(name, record))
    header = signed[: signed.index(b"\r\nFrom:")].decode()
    for field in (
        "list-unsubscribe",
        "list-unsubscribe-post",
        "list-id",
        "feedback-id",
        "message-id",
        "subject",
    ):
        assert field in header
    assert "c=relaxed/relaxed" in header
    assert not dkim.verify(
        signed.replace(b"client@example.org", b"other@example.org"), dnsfunc=dns_for(name, record)
    )


def test_dkim_config_mistakes_are_one_clear_line(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    half = write_config(tmp_path, database_url, smtp={"dkim_domain": "sfera-reporting.example"})
    with pytest.raises(ConfigError, match="dkim_selector"):
        load_config(half)
    missing_env = write_config(
        tmp_path,
        database_url,
        smtp={"dkim_domain": "d.example", "dkim_selector": "s", "dkim_key_env": "NO_SUCH_VAR"},
    )
    monkeypatch.delenv("NO_SUCH_VAR", raising=False)
    with pytest.raises(ConfigError, match="NO_SUCH_VAR"):
        signer_from_config(load_config(missing_env))
    (tmp_path / "bad.pem").write_text("not a key")
    bad_key = write_config(
        tmp_path,
        database_url,
        smtp={"dkim_domain": "d.example", "dkim_selector": "s", "dkim_key_file": "bad.pem"},
    )
    with pytest.raises(ConfigError, match="not a PEM private key"):
        signer_from_config(load_config(bad_key))
    assert signer_from_config(load_config(write_config(tmp_path, database_url))) is None
