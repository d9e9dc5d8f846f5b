"""`notifier subscribers suppressed` and `notifier subscribers unsuppress`: the suppression list.

Thin wrappers over ``notifier.bounces.suppression``, added to the ``subscribers`` group:
who gets no mail and why (bounced, complained, unsubscribed), and an operator lifting a
bounce or complaint suppression with a recorded reason.
"""

from __future__ import annotations

from typing import Any

import typer

from notifier.cli.common import console, print_json, state
from notifier.cli.subscribers import subscriber_dict, subscribers_app

JSON = typer.Option(False, "--json", help="print one JSON object")


def _entry(item: Any) -> dict[str, Any]:
    event = item.event
    return {
        **subscriber_dict(item.subscriber), "reason": item.reason,
        "event": None if event is None else {
            "kind": event.kind, "code": event.code, "detail": event.detail, "source": event.source,
            "at": event.at, "message": event.message_id,
        },
    }  # fmt: skip


@subscribers_app.command("suppressed")
def suppressed(
    ctx: typer.Context,
    reason: str | None = typer.Option(None, "--reason", help="bounced | complained | unsubscribed"),
    limit: int = typer.Option(100, "--limit", help="at most this many"),
    offset: int = typer.Option(0, "--offset", help="skip this many first"),
    as_json: bool = JSON,
) -> None:
    """List the subscribers who get no mail, with the reason and the bounce or complaint behind it.

    Example: notifier subscribers suppressed --reason bounced
    """
    from notifier.bounces import suppression
    from notifier.db import read_session

    st = state(ctx)
    with read_session(st.engine()) as session:
        found = suppression.suppressed(session, reason=reason, limit=limit, offset=offset)
    if as_json:
        print_json({"suppressed": [_entry(item) for item in found]})
        return
    if not found:
        console.print("Nobody is suppressed." if reason is None else f"Nobody is suppressed as {reason}.")
    for item in found:
        s, event = item.subscriber, item.event
        why = (
            f"  {event.code} {event.detail} ({event.source}, {event.at:%Y-%m-%d %H:%M} UTC)" if event else ""
        )
        console.print(
            f"{s.external_id or '#' + str(s.id):<14} {item.reason:<13} {s.email or ''}{why}", markup=False
        )


@subscribers_app.command("unsuppress")
def unsuppress(
    ctx: typer.Context,
    key: str = typer.Argument(..., metavar="KEY", help="account number, e-mail or phone"),
    reason: str = typer.Option(..., "--reason", help="why mail may go to this address again (recorded)"),
    by: str = typer.Option("", "--by", help="who decided it"),
    as_json: bool = JSON,
) -> None:
    """Mail a bounced or complained subscriber again (someone who unsubscribed stays so).

    Example: notifier subscribers unsuppress ACC-1001 --reason "mailbox fixed, confirmed by phone" --by ivanov
    """
    from notifier import subscribers
    from notifier.bounces import suppression
    from notifier.db import write_session

    st = state(ctx)
    with write_session(st.engine()) as session:
        subscriber = subscribers.get_one(session, st.config, key)
        suppression.unsuppress(session, subscriber, reason=reason, by=by)
    if as_json:
        print_json(subscriber_dict(subscriber))
        return
    console.print(f"{subscriber.external_id or subscriber.email} is active again.", markup=False)
