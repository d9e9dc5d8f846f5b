"""An optional attachment (the maintenance announcement's .ics) on composed mail: the body goes
inside a multipart/mixed, parsed back with the standard library; mail without one is unchanged."""

from __future__ import annotations

import email
from datetime import UTC, datetime
from email import policy

import pytest

from notifier.composing import Attachment, Composer

ICS = b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nEND:VCALENDAR\r\n"


def _compose(**extra: object) -> bytes:
    composer = Composer("noreply@example.org", "Контур")
    return composer.compose(
        message_id="<notifier.1.0@example.org>", to_name="Ирина", to_address="irina@example.org",
        subject="Плановые работы 5 декабря", text="Текст письма", html="<p>Текст письма</p>",
        date=datetime(2026, 12, 1, 9, 0, tzinfo=UTC), unsubscribe_url="https://status.example.org/u/1.x",
        **extra,  # type: ignore[arg-type]
    )  # fmt: skip


def test_attachment_wraps_the_alternative_in_a_mixed_message() -> None:
    raw = _compose(attachments=[Attachment("maintenance-7.ics", "text/calendar; method=PUBLISH", ICS)])
    parsed = email.message_from_bytes(raw, policy=policy.default)
    assert parsed.get_content_type() == "multipart/mixed"
    assert str(parsed["Subject"]) == "Плановые работы 5 декабря"
    body, ics = parsed.get_payload()  # type: ignore[misc]
    assert body.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in body.get_payload()] == ["text/plain", "text/html"]
    assert body.get_payload()[0].get_content().strip() == "Текст письма"
    assert ics.get_content_type() == "text/calendar" and ics.get_param("method") == "PUBLISH"
    assert ics.get_filename() == "maintenance-7.ics" and ics.get_content_disposition() == "attachment"
    assert ics.get_payload(decode=True) == ICS
    assert b"\n" not in raw.replace(b"\r\n", b"")  # CRLF only


def test_text_only_message_with_attachment() -> None:
    composer = Composer("noreply@example.org")
    raw = composer.compose(message_id="<notifier.2.0@example.org>", to_name="", to_address="a@example.org",
                           subject="s", text="plain", html=None, date=datetime(2026, 12, 1, tzinfo=UTC),
                           unsubscribe_url=None, attachments=[Attachment("a.ics", "text/calendar", ICS)])  # fmt: skip
    parsed = email.message_from_bytes(raw, policy=policy.default)
    text, ics = parsed.get_payload()  # type: ignore[misc]
    assert text.get_content().strip() == "plain" and ics.get_payload(decode=True) == ICS


def test_no_attachment_gives_the_same_bytes_as_before() -> None:
    assert _compose() == _compose(attachments=())
    assert b"multipart/mixed" not in _compose()


def test_attachment_name_cannot_inject_headers() -> None:
    with pytest.raises(ValueError):
        _compose(attachments=[Attachment('x.ics"\r\nBcc: evil@example.org', "text/calendar", ICS)])
