"""A real Postfix for tests: Debian's binaries, a config directory of the test's own.

    with PostfixServer(relay_port=smtp.port, transports={"bounces.test": f"lmtp:[127.0.0.1]:{port}"},
                       delay_warning="2s") as postfix:
        smtplib.SMTP("127.0.0.1", postfix.port).sendmail(return_path, [rcpt], data)
        postfix.wait_for(lambda: ..., what="the DSN")

It listens on 127.0.0.1:<free port> only (its own master.cf: no other listener, no local
delivery, ``mydestination`` empty), resolves nothing (``smtp_dns_support_level =
disabled``), relays everything to ``relayhost = [127.0.0.1]:<relay_port>`` except the
domains of ``transports`` (an inline transport map, e.g. the bounce domain to an LMTP
port), keeps its queue and log (``maillog_file``) in the temp dir, and retries deferred
mail every second. As root it runs as ``postfix``/``postdrop``. ``stop()`` runs
``postfix stop``, then ``postfix abort`` if need be. ``available()`` says whether the
binaries are here; tests skip otherwise.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

POSTFIX = shutil.which("postfix") or "/usr/sbin/postfix"

_MASTER_CF = """\
127.0.0.1:{port} inet n - n - - smtpd
cleanup   unix n - n - 0 cleanup
qmgr      unix n - n 300 1 qmgr
rewrite   unix - - n - - trivial-rewrite
bounce    unix - - n - 0 bounce
defer     unix - - n - 0 bounce
trace     unix - - n - 0 bounce
verify    unix - - n - 1 verify
flush     unix n - n 1000? 0 flush
proxymap  unix - - n - - proxymap
smtp      unix - - n - - smtp
relay     unix - - n - - smtp
lmtp      unix - - n - - lmtp
error     unix - - n - - error
retry     unix - - n - - error
discard   unix - - n - - discard
showq     unix n - n - - showq
anvil     unix - - n - 1 anvil
scache    unix - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
"""


def available() -> bool:
    return Path(POSTFIX).exists() and Path("/usr/lib/postfix/sbin/master").exists()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PostfixServer:
    def __init__(
        self, *, relay_port: int, transports: dict[str, str] | None = None, delay_warning: str = "0",
        hostname: str = "postfix.test",
    ) -> None:  # fmt: skip
        self.relay_port, self.transports = relay_port, transports or {}
        self.delay_warning, self.hostname = delay_warning, hostname
        self.port = _free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="notifier-postfix-"))
        self.dir.chmod(0o755)
        self.started = False

    @property
    def log(self) -> str:
        path = self.dir / "maillog"
        return path.read_text(errors="replace") if path.exists() else ""

    def _main_cf(self) -> str:
        transports = ", ".join(f"{domain}={target}" for domain, target in self.transports.items())
        owner = "postfix" if os.geteuid() == 0 else Path.home().owner()
        lines = {
            "compatibility_level": "3.6", "queue_directory": self.dir / "queue", "data_directory": self.dir / "data",
            "mail_owner": owner, "setgid_group": "postdrop", "myhostname": self.hostname,
            "mydomain": self.hostname, "myorigin": self.hostname, "mydestination": "", "relay_domains": "",
            "local_recipient_maps": "", "alias_maps": "", "alias_database": "", "inet_interfaces": "127.0.0.1",
            "inet_protocols": "ipv4", "mynetworks": "127.0.0.0/8",
            "smtpd_relay_restrictions": "permit_mynetworks, reject", "relayhost": f"[127.0.0.1]:{self.relay_port}",
            "transport_maps": f"inline:{{ {transports} }}" if transports else "",
            "smtp_dns_support_level": "disabled", "lmtp_dns_support_level": "disabled", "disable_dns_lookups": "yes",
            "smtp_tls_security_level": "none", "maillog_file": self.dir / "maillog", "maillog_file_prefixes": self.dir, "biff": "no",
            "delay_warning_time": self.delay_warning, "queue_run_delay": "1s", "minimal_backoff_time": "1s",
            "maximal_backoff_time": "2s", "smtputf8_enable": "no", "notify_classes": "",
        }  # fmt: skip
        return "".join(f"{key} = {value}\n" for key, value in lines.items())

    def start(self) -> PostfixServer:
        (self.dir / "queue").mkdir(mode=0o755)  # postfix creates the rest, owned as it needs
        (self.dir / "data").mkdir(mode=0o700)
        if os.geteuid() == 0:
            shutil.chown(self.dir / "data", "postfix", "postfix")
        (self.dir / "main.cf").write_text(self._main_cf())
        (self.dir / "master.cf").write_text(_MASTER_CF.format(port=self.port))
        self._postfix("start")
        self.started = True
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            time.sleep(0.1)
        raise RuntimeError(f"postfix did not listen on 127.0.0.1:{self.port}:\n{self.log[-3000:]}")

    def _postfix(self, command: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [POSTFIX, "-c", str(self.dir), command], capture_output=True, text=True, timeout=60,
            env={**os.environ, "MAIL_CONFIG": str(self.dir)},
        )  # fmt: skip
        if command == "start" and result.returncode != 0:
            # Postfix writes its reasons to a terminal or syslog only: ask again under `script`.
            again = subprocess.run(
                ["script", "-qc", f"{POSTFIX} -c {self.dir} check", "/dev/null"], capture_output=True, text=True,
                timeout=60,
            )  # fmt: skip
            raise RuntimeError(f"postfix -c {self.dir} start failed:\n{again.stdout}\n{self.log[-3000:]}")
        return result

    def flush(self) -> None:
        """Retry the deferred queue now (``postqueue -f`` for this instance)."""
        subprocess.run(["postqueue", "-c", str(self.dir), "-f"], capture_output=True, timeout=30)

    def wait_for(self, condition: Callable[[], object], *, what: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what}; postfix log:\n{self.log[-4000:]}")

    def stop(self) -> None:
        if self.started:
            if self._postfix("stop").returncode != 0:
                self._postfix("abort")
            self.started = False
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> PostfixServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
