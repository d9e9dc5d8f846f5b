"""Benchmark: what DKIM signing costs per message (µs), for a ~10 KB two-part letter.

Owns measuring ``notifier.delivery.dkim.DkimSigner.sign`` alone on messages shaped like the
apology (multipart/alternative, Cyrillic text and HTML in base64, List-Unsubscribe, List-Id,
Feedback-ID), each with its own To and Message-ID, and for comparison dkimpy's own
``dkim.sign`` (pure-Python RSA). Every signature made is verified once with dkimpy.
The cost inside a whole mailing (DKIM on/off) is ``benchmarks/mailing.py``'s.

    python benchmarks/dkim_signing.py [--messages 2000] [--bits 2048]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import dkim  # noqa: E402

from notifier.delivery.dkim import DkimSigner, dns_record, generate_key, private_pem  # noqa: E402

TEXT = (
    "Здравствуйте! 1 декабря с 09:10 до 14:05 по времени Екатеринбурга сервис налоговой отчётности "
    "был недоступен: отказал сервер базы данных. Мы приносим извинения от имени всей компании. "
) * 10
HTML = (
    "<html><body>"
    + "".join(f"<p>{TEXT[i : i + 200]}</p>" for i in range(0, len(TEXT), 200))
    + "</body></html>"
)


def letter() -> bytes:
    message = MIMEMultipart("alternative")
    message["From"] = "Sfera Reporting <noreply@sfera-reporting.example>"
    message["To"] = "client@example.org"
    message["Subject"] = "Приносим извинения за перебой в работе сервиса"
    message["Date"] = "Tue, 01 Dec 2026 14:10:00 +0000"
    message["Message-ID"] = "<notifier.1.0123abcd@sfera-reporting.example>"
    message["List-Id"] = "Incident notices <incidents.sfera-reporting.example>"
    message["List-Unsubscribe"] = "<https://status.sfera-reporting.example/unsubscribe/TOKEN>"
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message["Feedback-ID"] = "apology:notifier:sfera-reporting"
    message.attach(MIMEText(TEXT, "plain", "utf-8"))
    message.attach(MIMEText(HTML, "html", "utf-8"))
    return message.as_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def per_message(sign, messages: list[bytes]) -> float:
    start = time.perf_counter()
    for data in messages:
        sign(data)
    return (time.perf_counter() - start) / len(messages) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--bits", type=int, default=2048)
    args = parser.parse_args()
    key = generate_key(args.bits)
    signer = DkimSigner("sfera-reporting.example", "s2026", key)
    base = letter()
    messages = [
        base.replace(b"client@example.org", f"client{n}@example.org".encode()).replace(b"notifier.1.", f"notifier.{n}.".encode())
        for n in range(args.messages)
    ]  # fmt: skip
    record = dns_record(key).encode()
    assert dkim.verify(signer.sign(messages[0]), dnsfunc=lambda name, timeout=5: record)
    runs = [per_message(signer.sign, messages) for _ in range(3)]
    pem = private_pem(key)
    few = messages[: max(20, args.messages // 50)]
    slow = per_message(
        lambda data: dkim.sign(
            data, b"s2026", b"sfera-reporting.example", pem, canonicalize=(b"relaxed", b"relaxed")
        ),
        few,
    )
    print(f"message size: {len(base):,} bytes, RSA {args.bits} bits, {args.messages:,} messages x 3 runs")
    print(f"{'signer':<34}{'µs/message':>12}{'messages/s':>12}")
    median = statistics.median(runs)
    print(f"{'notifier DkimSigner (OpenSSL RSA)':<34}{median:>12,.0f}{1e6 / median:>12,.0f}")
    print(f"{'dkimpy dkim.sign (pure Python)':<34}{slow:>12,.0f}{1e6 / slow:>12,.0f}")


if __name__ == "__main__":
    main()
