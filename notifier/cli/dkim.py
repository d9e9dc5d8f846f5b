"""`notifier dkim keygen`: make a DKIM key pair and print the DNS record to publish.

A thin wrapper over ``notifier.delivery.dkim``: it needs no config and no database.
"""

from __future__ import annotations

import re
from pathlib import Path

import typer

from notifier.cli import app
from notifier.cli.common import console, print_json
from notifier.errors import UsageError

dkim_app = typer.Typer(
    help="DKIM signing keys: generate a key pair and its DNS record.", no_args_is_help=True
)
app.add_typer(dkim_app, name="dkim")

_LABELS = re.compile(
    r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
)


@dkim_app.command("keygen")
def keygen(
    selector: str = typer.Option(..., "--selector", help="DNS label naming the key, e.g. s2026"),
    domain: str = typer.Option(..., "--domain", help="the signing domain (d=), usually the From address's"),
    out: Path = typer.Option(..., "--out", help="directory for <selector>.private.pem and .public.pem"),
    bits: int = typer.Option(2048, "--bits", help="RSA key size: 2048 (advised) or more"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
) -> None:
    """Write a new RSA key pair (private key mode 0600) and print the TXT record to publish.

    Then set [smtp].dkim_domain, dkim_selector and dkim_key_file (or dkim_key_env) in config.toml.

    Example: notifier dkim keygen --selector s2026 --domain sfera-reporting.example --out /etc/notifier/dkim
    """
    from notifier.delivery import dkim

    if not _LABELS.fullmatch(selector):
        raise UsageError(f"--selector {selector!r} must be a DNS label such as s2026")
    if not _LABELS.fullmatch(domain) or "." not in domain:
        raise UsageError(f"--domain {domain!r} is not a domain name such as example.com")
    if bits < 2048 or bits > 8192:
        raise UsageError("--bits must be between 2048 and 8192")
    key = dkim.generate_key(bits)
    try:
        private, public = dkim.write_key_pair(out, selector, key)
    except FileExistsError as exc:
        raise UsageError(f"{exc.filename} already exists: pick another --selector or --out") from None
    except OSError as exc:
        raise UsageError(f"--out {out}: cannot write the key there: {exc.strerror}") from None
    record, name = dkim.dns_record(key), f"{selector}._domainkey.{domain.lower()}"
    if as_json:
        print_json({"private_key": str(private), "public_key": str(public), "name": name, "txt": record})
        return
    console.print(f"Private key: {private} (mode 0600; keep it secret)", markup=False)
    console.print(f"Public key:  {public}", markup=False)
    console.print(f"Publish this TXT record at {name}:", markup=False)
    console.print(record, markup=False)
    console.print("As a zone-file line:", markup=False)
    console.print(dkim.zone_line(selector, domain.lower(), record), markup=False)
