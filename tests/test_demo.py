"""`notifier demo`: the whole case runs from nothing and leaves readable, correct letters."""

from __future__ import annotations

import email
import email.policy
from pathlib import Path

from typer.testing import CliRunner

from notifier.cli import app


def test_demo_runs_the_case_end_to_end(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("NOTIFIER_SECRET", raising=False)
    monkeypatch.delenv("NOTIFIER_CONFIG", raising=False)
    result = CliRunner().invoke(app, ["demo", "--dir", str(tmp_path / "demo"), "--subscribers", "1500"])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "Declared INC-1" in out and "Resolved INC-1 after 5 h 7 min" in out
    assert "Екатеринбурга (5 ч 7 мин)" in out  # the sample apology, in the reader's local time

    letters = [
        email.message_from_bytes(p.read_bytes(), policy=email.policy.default)
        for p in sorted((tmp_path / "demo" / "mail").glob("*.eml"))
    ]
    apologies = [m for m in letters if "извин" in str(m["Subject"]).lower() or "sorry" in str(m["Subject"]).lower()]
    recipients = [m["To"].addresses[0].addr_spec for m in apologies]
    assert len(recipients) == len(set(recipients)) > 0  # one apology each
    # Those with only a phone number got their apology by SMS (the demo's stand-in for Kannel),
    # and every SMS was reported delivered back to the web app.
    texts = (tmp_path / "demo" / "sms.txt").read_text(encoding="utf-8").splitlines()
    sms_apologies = [line for line in texts if "/letters/1/" in line]
    assert sms_apologies and len({line.split("\t")[0] for line in sms_apologies}) == len(sms_apologies)
    assert f"{len(texts)} SMS in" in out and f"{len(texts)} of them reported delivered" in out
    declared = next(line for line in out.splitlines() if line.startswith("Declared INC-1"))
    assert f"{len(recipients) + len(sms_apologies)} of 1500 subscribers affected" in declared
    assert "One of the apology SMS" in out
    text = apologies[0].get_body(("plain",)).get_content()
    assert "Отказал дисковый массив" in text  # the cause ...
    assert "Исправили настройку автоматического переключения" in text  # ... and the measures
    assert apologies[0]["List-Unsubscribe"] and apologies[0]["Message-ID"]
