"""Bounce, complaint and auto-reply messages for tests, shaped like the real ones.

``sent_row`` inserts the outbox row a bounce is about. ``postfix_dsn`` is what Debian's Postfix 3.7 generates (copied from a run of
``tests/postfix.py``, addresses made parameters); ``arf_report`` follows RFC 5965's
example; ``qmail_bounce`` is the non-standard format flufl.bounce recognises; the
auto-replies are what Exchange/Outlook, Gmail and Yandex send.
"""

from __future__ import annotations

from typing import Any

from notifier.db import write_session
from notifier.models import Message, Subscriber, utcnow


def sent_row(
    engine: Any, subscriber: Subscriber, kind: str = "apology", incident_id: int | None = None
) -> int:
    """An outbox row for a message that went to ``subscriber``: what a bounce comes back about."""
    with write_session(engine) as session:
        row = Message(
            kind=kind, state="sent", subscriber_id=subscriber.id, recipient=subscriber.email or "",
            dedupe_key=f"{kind}:{subscriber.id}:{utcnow().timestamp()}", incident_id=incident_id, sent_at=utcnow(),
        )  # fmt: skip
        session.add(row)
        session.flush()
        assert row.id is not None
        return row.id


def postfix_dsn(
    return_path: str, recipient: str, *, action: str = "failed", status: str = "5.1.1",
    message_id: str = "<notifier.1.abc@sfera-reporting.example>",
    diagnostic: str = "smtp; 550 5.1.1 <{rcpt}>: Recipient address rejected: no such user",
) -> bytes:  # fmt: skip
    diagnostic = diagnostic.format(rcpt=recipient)
    subject = (
        "Undelivered Mail Returned to Sender" if action == "failed" else "Delayed Mail (still being retried)"
    )
    return f"""Received: by postfix.test (Postfix)
\tid 1548C20E7FA; Tue,  1 Dec 2026 22:00:20 +0000 (UTC)
Date: Tue,  1 Dec 2026 22:00:20 +0000 (UTC)
From: Mail Delivery System <MAILER-DAEMON@postfix.test>
Subject: {subject}
To: {return_path}
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
\tboundary="08AC920E7EF.1796162420/postfix.test"
Message-Id: <20261201220020.1548C20E7FA@postfix.test>

This is a MIME-encapsulated message.

--08AC920E7EF.1796162420/postfix.test
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients. It's attached below.

--08AC920E7EF.1796162420/postfix.test
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; postfix.test
X-Postfix-Queue-ID: 08AC920E7EF
X-Postfix-Sender: rfc822; {return_path}
Arrival-Date: Tue,  1 Dec 2026 22:00:20 +0000 (UTC)

Final-Recipient: rfc822; {recipient}
Original-Recipient: rfc822;{recipient}
Action: {action}
Status: {status}
Remote-MTA: dns; 127.0.0.1
Diagnostic-Code: {diagnostic}

--08AC920E7EF.1796162420/postfix.test
Content-Description: Undelivered Message Headers
Content-Type: text/rfc822-headers

Return-Path: <{return_path}>
From: noreply@sfera-reporting.example
To: {recipient}
Subject: =?utf-8?b?0J/RgNC40L3QvtGB0LjQvCDQuNC30LLQuNC90LXQvdC40Y8=?=
Message-ID: {message_id}
Date: Tue,  1 Dec 2026 22:00:20 +0000 (UTC)

--08AC920E7EF.1796162420/postfix.test--
""".replace("\n", "\r\n").encode()


def arf_report(
    complainer: str, *, mail_from: str = "", feedback_type: str = "abuse",
    message_id: str = "<notifier.1.abc@sfera-reporting.example>", to: str = "fbl@bounces.sfera-reporting.example",
) -> bytes:  # fmt: skip
    mail_from_line = f"Original-Mail-From: <{mail_from}>\n" if mail_from else ""
    return f"""From: <feedback@mail.example.net>
Date: Thu, 8 Mar 2026 14:00:00 EDT
Subject: FW: Приносим извинения
To: <{to}>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report;
     boundary="part1_13d.2e68ed54_boundary"

--part1_13d.2e68ed54_boundary
Content-Type: text/plain; charset="US-ASCII"
Content-Transfer-Encoding: 7bit

This is an email abuse report for an email message received from IP
192.0.2.1 on Thu, 8 Mar 2026 14:00:00 EDT.

--part1_13d.2e68ed54_boundary
Content-Type: message/feedback-report

Feedback-Type: {feedback_type}
User-Agent: SomeGenerator/1.0
Version: 1
{mail_from_line}Original-Rcpt-To: <{complainer}>
Arrival-Date: Thu, 8 Mar 2026 14:00:00 EDT
Reporting-MTA: dns; mail.example.net
Source-IP: 192.0.2.1

--part1_13d.2e68ed54_boundary
Content-Type: message/rfc822
Content-Disposition: inline

From: <noreply@sfera-reporting.example>
To: <{complainer}>
Subject: Apology
Message-ID: {message_id}
Date: Thu, 8 Mar 2026 13:00:00 EDT

We are sorry.

--part1_13d.2e68ed54_boundary--
""".replace("\n", "\r\n").encode()


def qmail_bounce(return_path: str, recipient: str) -> bytes:
    return f"""Return-Path: <>
Date: 1 Dec 2026 22:00:00 -0000
From: MAILER-DAEMON@mx.example.org
To: {return_path}
Subject: failure notice

Hi. This is the qmail-send program at mx.example.org.
I'm afraid I wasn't able to deliver your message to the following addresses.
This is a permanent error; I've given up. Sorry it didn't work out.

<{recipient}>:
Sorry, no mailbox here by that name. (#5.1.1)

--- Below this line is a copy of the message.

Return-Path: <{return_path}>
From: noreply@sfera-reporting.example
To: {recipient}
Subject: Apology

We are sorry.
""".replace("\n", "\r\n").encode()


def out_of_office(
    sender: str, to: str, *, style: str = "rfc3834", subject: str = "Automatic reply: Apology"
) -> bytes:
    extra = {
        "rfc3834": "Auto-Submitted: auto-replied\n",
        "exchange": "X-Auto-Response-Suppress: All\nX-MS-Exchange-Inbox-Rules-Loop: x\nX-Autoreply: yes\n",
        "precedence": "Precedence: auto_reply\n",
        "subject": "",
    }[style]
    return f"""From: Иван Петров <{sender}>
To: {to}
Subject: {subject}
Date: Tue, 1 Dec 2026 22:05:00 +0000
Message-ID: <ooo-1@example.org>
In-Reply-To: <notifier.1.abc@sfera-reporting.example>
{extra}MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8

I am out of the office until Monday and will not be able to deliver your request.
""".replace("\n", "\r\n").encode()
