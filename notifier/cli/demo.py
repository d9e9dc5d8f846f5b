"""`notifier demo`: the outage case end to end, in a fresh directory, with no setup."""

from __future__ import annotations

from pathlib import Path

import typer

from notifier.cli import app
from notifier.cli.common import console


@app.command("demo")
def demo(
    directory: Path | None = typer.Option(
        None, "--dir", help="where to put the demo project (default: a new temp dir)"
    ),
    count: int = typer.Option(
        4000, "--subscribers", min=100, max=200_000, help="how many subscribers to generate"
    ),
) -> None:
    """Run the whole case: subscribers, an outage in two regions, status notices, the apology.

    Needs no config and no database: it writes its own in --dir and starts a local SMTP sink, the
    demo's stand-in for an SMS gateway (sendsms like Kannel's; it texts nobody) and the web app.
    Example: notifier demo --dir /tmp/notifier-demo
    """
    from notifier.demo import run_demo

    result = run_demo(directory, count=count, say=lambda line: console.print(line, markup=False))
    console.print("\nOne of the apologies, as a subscriber in Sverdlovsk Oblast reads it:\n", markup=False)
    console.print(result.sample_apology, markup=False)
    if result.sample_sms:
        console.print("\nOne of the apology SMS, as a client with only a phone number reads it:\n", markup=False)
        console.print(result.sample_sms + "\n", markup=False)
    console.print(
        f"Open the e-mails in {result.mail_dir} with any mail client; the project is in {result.directory}."
    )
