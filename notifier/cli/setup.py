"""`notifier init`: create or upgrade the database and check the config."""

from __future__ import annotations

import typer

from notifier.cli import app
from notifier.cli.common import console, print_json, state


@app.command("init")
def init(
    ctx: typer.Context, as_json: bool = typer.Option(False, "--json", help="print one JSON object")
) -> None:
    """Create or upgrade the database and check config.toml.

    Example: notifier --config config.toml init
    """
    from notifier.db import upgrade
    st = state(ctx)
    config = st.config
    before, after = upgrade(st.engine(check=False))
    if as_json:
        print_json({"database": config.database_url, "from": before, "to": after})
        return
    where = config.database_url.split("@")[-1]
    if before == after:
        console.print(f"Database {where} is up to date (schema {after}).")
    else:
        console.print(f"Database {where}: schema {before or 'empty'} -> {after}.")
    console.print(f"Config {config.path}: {len(config.regions)} regions, {len(config.services)} services.")
