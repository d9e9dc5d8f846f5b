"""`notifier users …`: console users — add (prints the login token once), list, disable."""

from __future__ import annotations

import typer

from notifier.cli import app
from notifier.cli.common import console, print_json, state

users_app = typer.Typer(help="Support-console users: add, list, disable.", no_args_is_help=True)
app.add_typer(users_app, name="users")

JSON = typer.Option(False, "--json", help="print one JSON object")


@users_app.command("add")
def add(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="the person's name, recorded on everything they do"),
    locale: str | None = typer.Option(
        None, "--locale", help="ru | en: the console's language for them (default: [notifier].default_locale)"
    ),
    as_json: bool = JSON,
) -> None:
    """Add a console user and print their login token (shown this once; only a hash is kept).

    Example: notifier users add ivanov --locale en
    """
    from notifier import users
    from notifier.db import write_session
    with write_session(state(ctx).engine()) as session:
        user, token = users.add(session, name, locale=locale)
    if as_json:
        print_json({"name": user.name, "token": token})
        return
    console.print(f"Added console user {user.name}. Their login token (shown only now):", markup=False)
    console.print(token, markup=False)


@users_app.command("list")
def list_(ctx: typer.Context, as_json: bool = JSON) -> None:
    """List console users.

    Example: notifier users list
    """
    from notifier import users
    from notifier.db import read_session
    with read_session(state(ctx).engine()) as session:
        found = users.list_users(session)
    if as_json:
        print_json(
            {"users": [{"name": u.name, "disabled": u.disabled, "created_at": u.created_at, "locale": u.locale}
                       for u in found]}  # fmt: skip
        )
        return
    for user in found:
        console.print(f"{user.name}{'  (disabled)' if user.disabled else ''}", markup=False)


@users_app.command("disable")
def disable(ctx: typer.Context, name: str = typer.Argument(..., help="user name")) -> None:
    """Stop a console user from logging in (their open session ends too).

    Example: notifier users disable ivanov
    """
    from notifier import users
    from notifier.db import write_session
    with write_session(state(ctx).engine()) as session:
        user = users.disable(session, name)
    console.print(f"Disabled console user {user.name}.", markup=False)
