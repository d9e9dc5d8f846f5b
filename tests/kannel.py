"""A real Kannel for tests: Debian's bearerbox and smsbox with the fake SMSC of kannel-extras,
started from a temp dir with a kannel.conf of their own, everything on 127.0.0.1, free ports.

``KannelGateway(directory)`` as a context manager starts bearerbox (its fake SMSC listening),
smsbox (sendsms on ``sendsms_url``) and ``fakesmsc`` connected to the fake SMSC, waits until
bearerbox reports both on-line, and stops them all on exit. ``received()`` reads back what
reached the "phones": each line ``fakesmsc`` logs (``Got message N: <from to type [udh] data>``),
with the parts of a concatenated message joined and UCS-2 decoded. ``denied_prefixes``
become the SMSC's ``denied-prefix``: Kannel then refuses such numbers as "Not routable" and
reports ``16/NACK/no SMSC`` to the dlr-url. Delivery reports: the fake SMSC reports 8 (taken
by the SMSC) and 1 (delivered) for every message whose dlr-mask asks for them.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import time
import urllib.parse
import urllib.request
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from tests.conftest import free_port

BEARERBOX, SMSBOX, FAKESMSC = Path("/usr/sbin/bearerbox"), Path("/usr/sbin/smsbox"), Path("/usr/lib/kannel/test/fakesmsc")
USERNAME, PASSWORD = "notifier", "kannel-test-password"
_LINE = re.compile(r"Got message \d+: <(\S+) (\S+) (\S+) (.*)>$")


def available() -> bool:
    return all(path.exists() for path in (BEARERBOX, SMSBOX, FAKESMSC))


@dataclass
class ReceivedSms:
    """One SMS as the phone shows it: all its parts joined."""

    sender: str
    receiver: str
    text: str
    parts: int


def _unquote(data: str) -> bytes:
    return urllib.parse.unquote_to_bytes(data.replace("+", " "))  # Kannel writes a space as '+'


def _decode(kind: str, data: str) -> tuple[str, bytes]:
    """(udh, payload bytes) of one fakesmsc line's message part."""
    if kind == "udh":
        udh, _, rest = data.partition(" ")
        _, _, payload = rest.partition(" ")  # after the part's own type word
        return udh, _unquote(payload)
    if kind == "text":
        return "", data.encode("utf-8")
    return "", _unquote(data)


def _text(raw: bytes, ucs2: bool) -> str:
    return raw.decode("utf-16-be", errors="replace") if ucs2 else raw.decode("utf-8", errors="replace")


def _looks_ucs2(raw: bytes) -> bool:
    """UTF-16BE of Latin and Cyrillic text: most high bytes are 0x00 or 0x04."""
    high = raw[::2]
    return len(raw) % 2 == 0 and len(raw) > 0 and sum(b in (0, 4) for b in high) > len(high) / 2


class KannelGateway:
    def __init__(self, directory: Path, *, denied_prefixes: tuple[str, ...] = (), max_messages: int = 10) -> None:
        self.directory = directory
        self.denied_prefixes, self.max_messages = denied_prefixes, max_messages
        self.admin_port, self.box_port, self.smsc_port, self.sendsms_port = (free_port() for _ in range(4))
        self.processes: list[subprocess.Popen[bytes]] = []
        self.fake_log = directory / "fakesmsc.log"

    @property
    def sendsms_url(self) -> str:
        return f"http://127.0.0.1:{self.sendsms_port}/cgi-bin/sendsms"

    def config_text(self) -> str:
        denied = f"denied-prefix = {';'.join(self.denied_prefixes)}\n" if self.denied_prefixes else ""
        d = self.directory
        return f"""group = core
admin-port = {self.admin_port}
admin-interface = 127.0.0.1
admin-password = admin-{PASSWORD}
admin-allow-ip = 127.0.0.1
smsbox-port = {self.box_port}
smsbox-interface = 127.0.0.1
box-allow-ip = 127.0.0.1
log-file = {d}/bearerbox.log
log-level = 0
access-log = {d}/access.log
dlr-storage = internal

group = smsc
smsc = fake
smsc-id = fake
port = {self.smsc_port}
our-host = 127.0.0.1
connect-allow-ip = 127.0.0.1
{denied}
group = smsbox
bearerbox-host = 127.0.0.1
bearerbox-port = {self.box_port}
sendsms-port = {self.sendsms_port}
sendsms-interface = 127.0.0.1
log-file = {d}/smsbox.log
log-level = 0

group = sendsms-user
username = {USERNAME}
password = {PASSWORD}
max-messages = {self.max_messages}
concatenation = true
"""

    # Running ------------------------------------------------------------------------------

    def __enter__(self) -> KannelGateway:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def _spawn(self, *args: str, log: str) -> subprocess.Popen[bytes]:
        out = (self.directory / log).open("ab")
        proc = subprocess.Popen(list(args), cwd=self.directory, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)  # fmt: skip
        self.processes.append(proc)
        return proc

    def start(self, timeout: float = 30) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        conf = self.directory / "kannel.conf"
        conf.write_text(self.config_text(), encoding="utf-8")
        self._spawn(str(BEARERBOX), str(conf), log="bearerbox.out")
        self._wait(lambda: "Status: running" in self.status(), timeout, "bearerbox did not start")
        self._spawn(str(SMSBOX), str(conf), log="smsbox.out")
        # -m 0: the fake phone network sends nothing of its own; it only receives (and logs).
        self._spawn(str(FAKESMSC), "-H", "127.0.0.1", "-r", str(self.smsc_port), "-i", "1", "-m", "0",
                    "1 2 text nothing", log="fakesmsc.log")  # fmt: skip
        self._wait(self._ready, timeout, "smsbox and the fake SMSC did not come on-line")

    def _ready(self) -> bool:
        status = self.status()
        return "smsbox:" in status and "(online" in status and self._sendsms_listening()

    def _sendsms_listening(self) -> bool:
        import socket

        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", self.sendsms_port)) == 0

    def _wait(self, predicate, timeout: float, what: str) -> None:  # noqa: ANN001
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            for proc in self.processes:
                if proc.poll() is not None:
                    raise RuntimeError(f"{what}: {proc.args[0]} exited {proc.returncode}; see {self.directory}")
            time.sleep(0.1)
        raise RuntimeError(f"{what} within {timeout} s; see {self.directory}")

    def status(self) -> str:
        url = f"http://127.0.0.1:{self.admin_port}/status.txt?password=admin-{PASSWORD}"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.read().decode("utf-8", errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        for proc in reversed(self.processes):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in reversed(self.processes):
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        self.processes.clear()

    # What the phones got ---------------------------------------------------------------------

    def received(self) -> list[ReceivedSms]:
        """Every SMS the fake SMSC took, in order, concatenated parts joined."""
        found: list[ReceivedSms] = []
        parts: dict[tuple[str, str], dict[int, bytes]] = defaultdict(dict)
        wanted: dict[tuple[str, str], int] = {}
        for line in self.fake_log.read_text(encoding="utf-8", errors="replace").splitlines():
            match = _LINE.search(line)
            if not match:
                continue
            sender, receiver, kind, data = match.groups()
            udh, raw = _decode(kind, data)
            if udh:
                header = urllib.parse.unquote_to_bytes(udh)  # 05 00 03 <ref> <total> <seq>
                key = (receiver, f"{header[3]}")
                parts[key][header[5]] = raw
                wanted[key] = header[4]
                if len(parts[key]) == wanted[key]:
                    pieces = parts.pop(key)
                    joined = b"".join(pieces[n] for n in sorted(pieces))
                    found.append(ReceivedSms(sender, receiver, _text(joined, _looks_ucs2(joined)), wanted[key]))
                continue
            found.append(ReceivedSms(sender, receiver, _text(raw, kind in ("ucs-2", "ucs2")), 1))
        return found

    def to(self, receiver: str) -> list[str]:
        return [sms.text for sms in self.received() if sms.receiver == receiver]

    def wait_for(self, count: int, timeout: float = 20) -> list[ReceivedSms]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.received()
            if len(found) >= count:
                return found
            time.sleep(0.05)
        return self.received()


def copy_logs(gateway: KannelGateway, destination: Path) -> None:
    """Keep the daemons' logs next to a failing test's files."""
    for name in ("bearerbox.log", "smsbox.log", "fakesmsc.log"):
        source = gateway.directory / name
        if source.exists():
            shutil.copy(source, destination / name)
