"""`notifier sms …`: the SMS decisions an operator makes: send a mailing held over its budget,
list the numbers a gateway refused, text a number again.

Thin wrappers over ``notifier.outbox.sms``.
"""

from __future__ import annotations

import typer

from notifier.cli import app
from notifier.cli.common import console, print_json, state
from notifier.errors import UsageError

sms_app = typer.Typer(help="SMS: release a held mailing, refused numbers.", no_args_is_help=True)
app.add_typer(sms_app, name="sms")
JSON = typer.Option(False, "--json", help="print one JSON object")


@sms_app.command("release")
def release(
    ctx: typer.Context,
    incident_id: str = typer.Argument(..., metavar="ID", help="the incident whose SMS are held"),
    kind: str | None = typer.Option(None, "--kind", help="status | apology (default: both)"),
    as_json: bool = JSON,
) -> None:
    """Send an SMS mailing that was held over [sms].max_messages_per_mailing, after all.

    Example: notifier sms release INC-3 --kind apology
    """
    from notifier import incidents
    from notifier.db import write_session
    from notifier.outbox import sms
    if kind is not None and kind not in ("status", "apology"):
        raise UsageError(f"--kind must be status or apology, not {kind!r}")
    st = state(ctx)
    with write_session(st.engine()) as session:
        incident = incidents.get(session, incident_id)
        released = sms.release(session, incident.id, [kind] if kind else ("status", "apology"))  # type: ignore[arg-type]
    if as_json:
        print_json({"incident": incident.ref, "released": released})
        return
    what = f"{kind} " if kind else ""
    console.print(f"{incident.ref}: {released} held {what}SMS queued to be sent.", markup=False)


@sms_app.command("refused")
def refused(ctx: typer.Context, as_json: bool = JSON) -> None:
    """Subscribers whose phone number an SMS gateway refused (they get no SMS until it changes).

    Example: notifier sms refused --json
    """
    from notifier.db import read_session
    from notifier.outbox import sms
    st = state(ctx)
    with read_session(st.engine()) as session:
        found = sms.refused_numbers(session)
    if as_json:
        print_json({"refused": [{"id": s.id, "external_id": s.external_id, "phone": s.phone, "email": s.email}
                                for s in found]})  # fmt: skip
        return
    if not found:
        console.print("No refused numbers.")
    for s in found:
        console.print(f"{s.external_id or '#' + str(s.id):<14} {s.phone}  {s.name}", markup=False)


@sms_app.command("allow")
def allow(
    ctx: typer.Context,
    key: str = typer.Argument(..., metavar="KEY", help="account number, e-mail or phone"),
) -> None:
    """Text a subscriber's number again after a gateway refused it (say, it was mistyped and fixed).

    Example: notifier sms allow ACC-1001
    """
    from notifier import subscribers
    from notifier.db import write_session
    from notifier.models import utcnow
    from notifier.outbox import sms
    st = state(ctx)
    with write_session(st.engine()) as session:
        subscriber = subscribers.get_one(session, st.config, key)
        changed = sms.allow_number(session, subscriber, utcnow())
    shown = subscriber.external_id or subscriber.phone
    console.print(f"{shown}: SMS go to {subscriber.phone} again." if changed else f"{shown}: no refused number.",
                  markup=False)  # fmt: skip
