"""Channels per subscriber: the optional CSV column and `subscribers add --channel`, checked
like every other field; files without the column keep working and keep what was chosen."""

from __future__ import annotations

from sqlmodel import select

from notifier.db import read_session
from notifier.models import Subscriber

HEADER = "external_id,name,email,phone,region,services,locale"


def channels(engine) -> dict[str, str]:
    with read_session(engine) as session:
        return {s.external_id: s.channels for s in session.exec(select(Subscriber)).all()}


def test_the_channels_column_is_read_and_checked(engine, cli, tmp_path) -> None:
    path = tmp_path / "clients.csv"
    path.write_text(
        f"{HEADER},channels\n"
        "A1,Анна,anna@example.org,+79120000001,66,tax-reporting,ru,email;sms\n"
        "A2,Борис,,+79120000002,66,tax-reporting,ru,SMS\n"
        "A3,Вера,vera@example.org,,66,tax-reporting,ru,\n"
        "A4,Глеб,gleb@example.org,+79120000004,66,tax-reporting,ru,fax\n"
        "A5,Дина,dina@example.org,,66,tax-reporting,ru,sms\n",
        encoding="utf-8",
    )
    result = cli("subscribers", "import", str(path), "--json")
    assert result.exit_code == 1  # two rows rejected, three imported
    reasons = {r["line"]: r["reason"] for r in result.json()["rejections"]}
    assert reasons == {5: "unknown channel 'fax' (known: email, sms)", 6: "channels name sms, but there is no phone"}
    assert channels(engine) == {"A1": ";email;sms;", "A2": ";sms;", "A3": ""}


def test_a_file_without_the_column_keeps_the_channels_chosen_before(engine, cli, tmp_path) -> None:
    first, second = tmp_path / "first.csv", tmp_path / "second.csv"
    first.write_text(f"{HEADER},channels\nA1,Анна,anna@example.org,+79120000001,66,tax-reporting,ru,sms\n",
                     encoding="utf-8")  # fmt: skip
    second.write_text(f"{HEADER}\nA1,Анна Петрова,anna@example.org,+79120000001,66,tax-reporting,ru\n",
                      encoding="utf-8")  # fmt: skip
    assert cli("subscribers", "import", str(first)).exit_code == 0
    assert cli("subscribers", "import", str(second)).exit_code == 0
    assert channels(engine) == {"A1": ";sms;"}
    with read_session(engine) as session:
        assert session.exec(select(Subscriber)).one().name == "Анна Петрова"


def test_subscribers_add_with_channels(engine, cli) -> None:
    added = cli("subscribers", "add", "--external-id", "B1", "--name", "Павел", "--phone", "8 912 000-00-07",
                "--region", "66", "--channel", "sms", "--json")  # fmt: skip
    assert added.exit_code == 0, added.stderr
    assert added.json()["channels"] == ["sms"]
    refused = cli("subscribers", "add", "--external-id", "B2", "--phone", "8 912 000-00-08", "--region", "66",
                  "--channel", "email")  # fmt: skip
    assert refused.exit_code == 2
    assert refused.stderr.strip() == "error: channels name email, but there is no e-mail address"
    plain = cli("subscribers", "add", "--external-id", "B3", "--email", "b3@example.org", "--region", "66", "--json")
    assert plain.json()["channels"] == []
