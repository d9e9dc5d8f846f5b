"""Reading what comes back: VERP addresses, DSNs, ARF complaints, auto-replies (no database)."""

from __future__ import annotations

import pytest

from notifier.bounces import verp
from notifier.bounces.matching import row_id_from_message_id
from notifier.bounces.parsing import read_message
from tests.bounce_samples import arf_report, out_of_office, postfix_dsn, qmail_bounce

SECRET = b"test-secret-0123456789abcdef"
DOMAIN = "bounces.sfera-reporting.example"


def test_a_return_path_names_its_row_and_survives_case_changes() -> None:
    address = verp.return_path(SECRET, 4711, "bounces", DOMAIN)
    assert address.startswith("bounces+4711-") and address.endswith("@" + DOMAIN)
    assert verp.parse(SECRET, address, "bounces", DOMAIN) == 4711
    assert verp.parse(SECRET, address.upper(), "bounces", DOMAIN) == 4711
    assert verp.parse(SECRET, f"<{address}>", "bounces", DOMAIN) == 4711


def test_a_return_path_cannot_be_pointed_at_another_row() -> None:
    address = verp.return_path(SECRET, 4711, "bounces", DOMAIN)
    signature = address.split("-", 1)[1].split("@")[0]
    assert verp.parse(SECRET, f"bounces+4712-{signature}@{DOMAIN}", "bounces", DOMAIN) is None
    assert verp.parse(b"another-secret-0123456789", address, "bounces", DOMAIN) is None
    assert verp.parse(SECRET, address.replace(DOMAIN, "example.org"), "bounces", DOMAIN) is None
    assert verp.parse(SECRET, "bounces@" + DOMAIN, "bounces", DOMAIN) is None


def test_a_permanent_failure_is_a_hard_bounce_with_its_status_and_diagnostic() -> None:
    events, delivered_to = read_message(postfix_dsn("bounces+1-x@b.example", "Dead@Example.org"))
    assert len(events) == 1
    event = events[0]
    assert (event.kind, event.recipient, event.code) == ("hard_bounce", "dead@example.org", "5.1.1")
    assert "Recipient address rejected" in event.detail
    assert event.original_message_id == "<notifier.1.abc@sfera-reporting.example>"
    assert "bounces+1-x@b.example" in delivered_to


def test_a_delay_notice_and_a_temporary_failure_are_soft() -> None:
    delayed, _ = read_message(
        postfix_dsn("r@b.example", "slow@example.org", action="delayed", status="4.2.0")
    )
    expired, _ = read_message(postfix_dsn("r@b.example", "slow@example.org", action="failed", status="4.4.7"))
    assert [e.kind for e in delayed] == ["soft_bounce"] and delayed[0].code == "4.2.0"
    assert [e.kind for e in expired] == ["soft_bounce"]


def test_a_delivered_report_is_no_bounce() -> None:
    events, _ = read_message(postfix_dsn("r@b.example", "ok@example.org", action="delivered", status="2.0.0"))
    assert events == []


def test_a_qmail_bounce_is_recognised_through_flufl_bounce() -> None:
    events, _ = read_message(qmail_bounce("bounces+1-x@b.example", "gone@example.org"))
    assert [(e.kind, e.recipient) for e in events] == [("hard_bounce", "gone@example.org")]


def test_an_arf_abuse_report_is_a_complaint_by_the_original_recipient() -> None:
    events, _ = read_message(arf_report("Client@Example.org", mail_from="bounces+5-x@b.example"))
    assert len(events) == 1
    event = events[0]
    assert (event.kind, event.recipient, event.code) == ("complaint", "client@example.org", "abuse")
    assert event.return_path == "bounces+5-x@b.example"
    assert event.original_message_id == "<notifier.1.abc@sfera-reporting.example>"


@pytest.mark.parametrize("feedback_type", ["not-spam", "auth-failure"])
def test_reports_that_are_not_complaints_carry_no_event(feedback_type: str) -> None:
    assert read_message(arf_report("client@example.org", feedback_type=feedback_type))[0] == []


@pytest.mark.parametrize(
    ("style", "subject"),
    [("rfc3834", "Re: Apology"), ("exchange", "Re: Apology"), ("precedence", "Re: Apology"),
     ("subject", "Out of Office: Apology"), ("subject", "Автоответ: Приносим извинения"),
     ("subject", "Automatic reply: Apology")],
)  # fmt: skip
def test_out_of_office_replies_are_auto_replies_never_bounces(style: str, subject: str) -> None:
    events, _ = read_message(
        out_of_office("ivan@example.org", "bounces+1-x@b.example", style=style, subject=subject)
    )
    assert [e.kind for e in events] == ["auto_reply"]
    assert events[0].recipient == "ivan@example.org"


def test_an_ordinary_reply_carries_no_event() -> None:
    message = (
        b"From: ivan@example.org\r\nTo: bounces+1-x@b.example\r\nSubject: Re: Apology\r\n\r\nThanks!\r\n"
    )
    assert read_message(message)[0] == []


def test_the_row_id_is_read_from_notifier_message_ids() -> None:
    assert row_id_from_message_id("<notifier.42.0f3a9c@sfera-reporting.example>") == 42
    assert row_id_from_message_id("<notifier.42@sfera-reporting.example>") == 42
    assert row_id_from_message_id("notifier.42.0f3a9c@sfera-reporting.example") == 42
    assert row_id_from_message_id("<20261201.1548C@postfix.test>") is None


def test_a_reply_with_raw_utf8_headers_is_read_without_errors(caplog: pytest.LogCaptureFixture) -> None:
    message = "From: Иван <ivan@example.org>\r\nTo: bounces+1-x@b.example\r\nSubject: Спасибо\r\n\r\nСпасибо!\r\n"
    assert read_message(message.encode())[0] == []
    assert [r for r in caplog.records if r.levelname == "ERROR"] == []
