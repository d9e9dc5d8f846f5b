"""The demo's stand-in for Kannel: a local HTTP server that speaks smsbox's ``sendsms``
interface, keeps every SMS it is given, and reports each one delivered to its ``dlr-url``.

It is NOT an SMS gateway and sends nothing to any phone: ``notifier demo`` uses it when no
Kannel is configured, so that the whole SMS path (the messenger, the signed delivery-report
URL, the web endpoint that records reports) runs for real on one machine. It answers as
Kannel 1.4 does: ``202 0: Accepted for delivery``; ``403 Authorization failed for sendsms``
for a wrong user or password; ``400`` when ``to`` or ``text`` is missing. Accepted messages
are appended to ``sms.txt`` (one line each: number, a tab, the text) when given a directory.
Delivery reports go out from one background thread in order: Kannel's type 8 (taken by the
SMSC), then 1 (delivered), with ``%d`` and ``%A`` filled in as Kannel fills them.
"""

from __future__ import annotations

import queue
import threading
import urllib.parse
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

__all__ = ["KannelStandIn", "StoredSms"]


@dataclass(frozen=True)
class StoredSms:
    to: str
    text: str
    sender: str
    coding: str
    at: datetime


class KannelStandIn:
    """``with KannelStandIn(dir, username=…, password=…) as gateway:`` … ``gateway.url``."""

    def __init__(self, directory: Path | None = None, *, username: str, password: str) -> None:
        self.directory, self.username, self.password = directory, username, password
        self.messages: list[StoredSms] = []
        self.reports_sent = 0
        self._lock = threading.Lock()
        self._reports: queue.Queue[str | None] = queue.Queue()
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                status, body = stand_in._sendsms(self.path)
                payload = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:  # quiet, like a daemon
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._threads = [
            threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True),
            threading.Thread(target=self._report_loop, daemon=True),
        ]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/cgi-bin/sendsms"

    def __enter__(self) -> KannelStandIn:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._reports.put(None)
        self._threads[1].join(timeout=10)
        self.server.shutdown()
        self.server.server_close()

    def _sendsms(self, path: str) -> tuple[int, str]:
        url = urllib.parse.urlsplit(path)
        if url.path != "/cgi-bin/sendsms":
            return 404, "Unknown request."
        q = {key: values[0] for key, values in urllib.parse.parse_qs(url.query, keep_blank_values=True).items()}
        if q.get("username") != self.username or q.get("password") != self.password:
            return 403, "Authorization failed for sendsms"
        if not q.get("to") or "text" not in q:
            return 400, "Missing receiver number or text"
        sms = StoredSms(q["to"], q["text"], q.get("from", ""), q.get("coding", "0"), datetime.now(UTC))
        with self._lock:
            self.messages.append(sms)
            if self.directory is not None:
                self.directory.mkdir(parents=True, exist_ok=True)
                with (self.directory / "sms.txt").open("a", encoding="utf-8") as out:
                    out.write(f"{sms.to}\t{sms.text}\n")
        if q.get("dlr-url"):
            for kind, answer in (("8", "ACK/"), ("1", "")):
                self._reports.put(q["dlr-url"].replace("%d", kind).replace("%A", urllib.parse.quote(answer)))
        return 202, "0: Accepted for delivery"

    def _report_loop(self) -> None:
        while (url := self._reports.get()) is not None:
            try:
                with urllib.request.urlopen(url, timeout=10):
                    pass
                self.reports_sent += 1
            except OSError:  # as Kannel: a report that cannot be delivered is dropped
                pass
