"""Bounces and complaints that come back after the relay accepted a message; one suppression list.

One module per concern:

* ``verp``: the signed return path ``bounces+<id>-<signature>@domain`` and its parser;
* ``events``: ``BounceEvent``, what every intake produces;
* ``dsn``, ``arf``, ``autoreply`` and ``parsing``: RFC 3464 delivery reports (and the
  formats ``flufl.bounce`` knows), RFC 5965 complaint reports, auto-replies;
* ``matching``: which outbox row and subscriber an event is about;
* ``suppression``: the one place that applies events, and the operator's view of them;
* ``intake``: the LMTP/SMTP listener, the Maildir poller, single files;
* ``sns`` and ``mailgun``: ESP event webhooks (Amazon SES through SNS, Mailgun), verified.

It does not send mail nor set the return path on it: the SMTP messenger calls
``verp.return_path``. It does not serve HTTP: ``notifier.web.bounces`` does.
"""

from __future__ import annotations
