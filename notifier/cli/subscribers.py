"""`notifier subscribers …`: import, add, list, count, find, unsubscribe.

Thin wrappers over ``notifier.subscribers``: parse options, call the library, print. An
import that rejected rows still imports the valid ones, and then exits with 1 so that a
script notices; a file that cannot be read or has a wrong header exits with 2. ``--errors``
never overwrites what it must not: the input, the database, the config, or (without
``--force``) an existing file that is not an errors file of an earlier import.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from notifier.cli import app
from notifier.cli.common import bounded, console, print_json, state, thousands
from notifier.errors import UsageError

if TYPE_CHECKING:
    from notifier.config import Config
    from notifier.models import Subscriber
    from notifier.subscribers import ImportReport

FIND_LIMIT = 50  # subscribers.find's default: more are counted, not shown

subscribers_app = typer.Typer(
    help="Manage subscribers: import a CSV, add, list, count, find, unsubscribe.", no_args_is_help=True
)
app.add_typer(subscribers_app, name="subscribers")

JSON = typer.Option(False, "--json", help="print one JSON object")
SHOWN_REJECTIONS = 20  # the first rejections printed (the import keeps as many: KEPT_REJECTIONS)
MAX_LISTED = 100_000


def subscriber_dict(s: Subscriber) -> dict[str, Any]:
    return {
        "id": s.id, "external_id": s.external_id, "name": s.name, "email": s.email, "phone": s.phone,
        "region": s.region, "services": s.service_list, "locale": s.locale, "status": s.status,
        "channels": s.channel_list, "phone_refused": s.phone_refused is not None and s.phone_refused == s.phone,
        "created_at": s.created_at, "updated_at": s.updated_at,
        "self_subscribed": s.self_subscribed, "confirmed_at": s.confirmed_at,
    }  # fmt: skip


def _line(s: Subscriber) -> str:
    from notifier.characters import display_email
    contact = " ".join(part for part in (display_email(s.email), s.phone) if part)
    channels = f" via {'+'.join(s.channel_list)}" if s.channel_list else ""
    return (
        f"{s.external_id or '#' + str(s.id):<14} {s.status:<12} {s.region:>3}  {s.name}  {contact}  "
        f"[{', '.join(s.service_list)}] {s.locale}{channels}{'  self-subscribed' if s.self_subscribed else ''}"
    )


def _summary(report: ImportReport) -> str:
    parts = [
        f"{thousands(report.inserted)} new",
        f"{thousands(report.updated)} updated",
        f"{thousands(report.unchanged)} unchanged",
        f"{thousands(report.rejected)} rejected",
    ]
    if report.superseded:
        parts.append(f"{thousands(report.superseded)} superseded by a later row with the same key")
    rate = report.rows / report.seconds if report.seconds else 0
    return f"Imported {thousands(report.rows)} rows: {', '.join(parts)} ({report.seconds:.1f} s, {rate:,.0f} rows/s)."


@subscribers_app.command("import")
def import_(
    ctx: typer.Context,
    file: Path = typer.Argument(
        ..., metavar="FILE.csv", help="CSV: external_id,name,email,phone,region,services,locale[,channels]"
    ),
    errors: Path | None = typer.Option(
        None, "--errors", help="write the rejected rows here (CSV: original columns + line,reason)"
    ),
    force: bool = typer.Option(
        False, "--force", help="let --errors replace an existing file that is not an earlier errors file"
    ),
    batch_size: int = typer.Option(5000, "--batch-size", help="rows per transaction"),
    as_json: bool = JSON,
) -> None:
    """Import or update subscribers from a CSV file (UTF-8; services separated by ';').

    Rows are matched by external_id, else e-mail, else phone: re-importing updates, never
    duplicates, and never re-activates an unsubscribed subscriber. Valid rows are imported
    even when others are rejected (broken CSV quoting included); the exit code is then 1.
    One e-mail under two account numbers is imported and warned about, with both lines.

    Example: notifier subscribers import clients.csv --errors rejected.csv
    """
    from notifier import subscribers
    st = state(ctx)
    engine, config = st.engine(), st.config
    batch_size = bounded(batch_size, "--batch-size", 1, 1_000_000)
    errors_file = None
    if errors is not None and file.is_file():  # (a missing input is import_csv's one-line error)
        errors_file = _open_errors_file(errors, file, config, force=force)
    try:
        if sys.stdout.isatty() and not as_json:
            report = _import_with_bar(engine, config, file, batch_size, errors_file)
        else:
            report = subscribers.import_csv(
                engine, config, file, batch_size=batch_size, errors_writer=errors_file
            )
    finally:
        if errors_file:
            errors_file.close()
    if as_json:
        print_json({"file": str(file), **report.as_dict(), "errors_file": str(errors) if errors else None})
    else:
        console.print(_summary(report), markup=False)
        for rejection in report.rejections[:SHOWN_REJECTIONS]:
            console.print(f"{rejection.where}: {rejection.reason}", markup=False)
        if report.rejected > SHOWN_REJECTIONS:
            more = report.rejected - SHOWN_REJECTIONS
            where = f"see {errors}" if errors else "use --errors FILE to get them all"
            console.print(f"… and {thousands(more)} more; {where}", markup=False)
        for warning in report.warnings:
            console.print(f"warning: {warning.message}", markup=False)
        if report.shared_mailboxes > len(report.warnings):
            console.print(f"… and {thousands(report.shared_mailboxes - len(report.warnings))} more "
                          "e-mails given to several account numbers", markup=False)  # fmt: skip
    if report.rejected:
        raise typer.Exit(1)


def _protected(config: Config) -> dict[Path, str]:
    """Files an errors file must never replace, with what they are."""
    files = {config.path: "the config file"}
    url = config.database_url
    if url.startswith("sqlite:///") and not url.endswith(":memory:"):
        database = Path(url.removeprefix("sqlite:///"))
        files[database] = "the database"
        for suffix in ("-wal", "-shm", "-journal"):
            files[database.with_name(database.name + suffix)] = "the database's journal"
    return files


def _open_errors_file(errors: Path, file: Path, config: Config, *, force: bool) -> Any:
    """Open the --errors file for writing, after refusing every path it would destroy."""
    where = f"--errors {errors}"
    if errors.is_dir():
        raise UsageError(f"{where}: is a directory; give a file name such as rejected.csv")
    if errors.exists():
        for path, what in [(file, "the file being imported"), *_protected(config).items()]:
            if path.exists() and errors.samefile(path):
                raise UsageError(f"{where}: that is {what}; writing the rejected rows there would destroy it")
        if not force and errors.stat().st_size and not _earlier_errors_file(errors):
            raise UsageError(
                f"{where}: the file exists and is not an errors file of an earlier import; "
                "pass --force to replace it, or choose another name"
            )
    elif any(errors.resolve() == path.resolve() for path in _protected(config)):
        raise UsageError(f"{where}: that name belongs to the database; choose another")
    try:
        return errors.open("w", encoding="utf-8", newline="")
    except OSError as exc:
        raise UsageError(f"{where}: cannot write it: {exc.strerror}") from None


def _earlier_errors_file(path: Path) -> bool:
    from notifier.subscribers.csv_files import is_errors_file
    try:
        with path.open(encoding="utf-8", errors="replace", newline="") as existing:
            return is_errors_file(existing.readline(4096))
    except OSError:
        return False


def _import_with_bar(engine: Any, config: Any, file: Path, batch_size: int, errors_file: Any) -> ImportReport:
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from notifier import subscribers
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[rows]}"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("Importing", total=None, rows="")

        def show(report: ImportReport) -> None:
            rows = f"{thousands(report.rows)} rows, {thousands(report.rejected)} rejected"
            progress.update(task, total=report.bytes_total, completed=report.bytes_read, rows=rows)

        return subscribers.import_csv(
            engine, config, file, batch_size=batch_size, errors_writer=errors_file, on_progress=show
        )


@subscribers_app.command("add")
def add(
    ctx: typer.Context,
    name: str = typer.Option("", "--name", help="name of the person or organisation"),
    email: str = typer.Option("", "--email", help="e-mail address"),
    phone: str = typer.Option("", "--phone", help="phone, any common format (8 912 …, +7 912 …)"),
    region: str = typer.Option(..., "--region", help="region code from config.toml"),
    service: list[str] = typer.Option([], "--service", help="service code (repeat for more)"),
    locale: str = typer.Option("", "--locale", help="ru | en (default: the config's default_locale)"),
    external_id: str = typer.Option("", "--external-id", help="account number"),
    channel: list[str] = typer.Option(
        [], "--channel", help="email | sms (repeat for both; default: by [sms] in the config)"
    ),
    as_json: bool = JSON,
) -> None:
    """Add one subscriber (checked by the same rules as the import).

    Example: notifier subscribers add --external-id ACC-1001 --name "ООО Ромашка" --email info@romashka.example
    --phone "8 912 345-67-89" --region 66 --service tax-reporting
    """
    from notifier import subscribers
    from notifier.db import write_session
    st = state(ctx)
    with write_session(st.engine()) as session:
        subscriber = subscribers.add_subscriber(
            session, st.config, external_id=external_id, name=name, email=email, phone=phone,
            region=region, services=service, locale=locale, **({"channels": channel} if channel else {}),
        )  # fmt: skip
    if as_json:
        print_json(subscriber_dict(subscriber))
        return
    console.print(f"Added {_line(subscriber)}", markup=False)


@subscribers_app.command("list")
def list_(
    ctx: typer.Context,
    region: str | None = typer.Option(None, "--region", help="only this region"),
    service: str | None = typer.Option(None, "--service", help="only subscribers of this service"),
    status: str | None = typer.Option(None, "--status", help="active | unsubscribed | bounced"),
    limit: int = typer.Option(50, "--limit", help="at most this many (1 to 100000)"),
    offset: int = typer.Option(0, "--offset", help="skip this many first"),
    as_json: bool = JSON,
) -> None:
    """List subscribers in the order they were added.

    Example: notifier subscribers list --region 66 --service tax-reporting --limit 20
    """
    from notifier import subscribers
    from notifier.db import read_session
    limit = bounded(limit, "--limit", 1, MAX_LISTED)
    offset = bounded(offset, "--offset", 0, 2**62)
    st = state(ctx)
    with read_session(st.engine()) as session:
        found = subscribers.list_subscribers(
            session, region=region, service=service, status=status, limit=limit, offset=offset
        )
    if as_json:
        print_json({"subscribers": [subscriber_dict(s) for s in found]})
        return
    if not found:
        console.print("No subscribers.")
    for s in found:
        console.print(_line(s), markup=False)


@subscribers_app.command("count")
def count(
    ctx: typer.Context,
    region: list[str] = typer.Option([], "--region", help="region code (repeat; none = all)"),
    service: list[str] = typer.Option([], "--service", help="service code (repeat; none = all)"),
    status: str = typer.Option("active", "--status", help="active | unsubscribed | bounced"),
    as_json: bool = JSON,
) -> None:
    """Count subscribers in any of the regions who use any of the services.

    Example: notifier subscribers count --region 66 --region 54 --service tax-reporting --json
    """
    from notifier import subscribers
    from notifier.db import read_session
    st = state(ctx)
    for code in region:
        if code not in st.config.regions:
            raise UsageError(f"unknown region {code!r} (known: {', '.join(sorted(st.config.regions))})")
    for code in service:
        if code not in st.config.services:
            raise UsageError(f"unknown service {code!r} (known: {', '.join(sorted(st.config.services))})")
    with read_session(st.engine()) as session:
        n = subscribers.count_subscribers(session, regions=region, services=service, status=status)
    if as_json:
        print_json({"count": n})
        return
    console.print(thousands(n))


@subscribers_app.command("find")
def find(
    ctx: typer.Context,
    query: str = typer.Argument(..., metavar="QUERY", help="account number, e-mail, phone or part of a name"),
    as_json: bool = JSON,
) -> None:
    """Find subscribers by account number, e-mail, phone (any format) or part of the name.

    Example: notifier subscribers find "8 (912) 345-67-89"
    """
    from notifier import subscribers
    from notifier.db import read_session
    from notifier.subscribers.lookup import count_found
    st = state(ctx)
    with read_session(st.engine()) as session:
        found = subscribers.find(session, st.config, query)
        total = count_found(session, st.config, query) if len(found) >= FIND_LIMIT else len(found)
    if as_json:
        print_json({"subscribers": [subscriber_dict(s) for s in found], "total": total})
        return
    if not found:
        console.print(f"Nobody matches {query!r}.", markup=False)
        raise typer.Exit(1)
    for s in found:
        console.print(_line(s), markup=False)
    if total > len(found):
        console.print(f"{thousands(len(found))} shown of {thousands(total)}, narrow the query.", markup=False)


@subscribers_app.command("unsubscribe")
def unsubscribe(
    ctx: typer.Context,
    key: str = typer.Argument(..., metavar="KEY", help="account number, e-mail or phone"),
    as_json: bool = JSON,
) -> None:
    """Stop all mail to one subscriber (doing it twice is harmless).

    Example: notifier subscribers unsubscribe ACC-1001
    """
    from notifier import subscribers
    from notifier.db import write_session
    st = state(ctx)
    with write_session(st.engine()) as session:
        subscriber = subscribers.unsubscribe(session, key, config=st.config)
    if as_json:
        print_json(subscriber_dict(subscriber))
        return
    console.print(
        f"{subscriber.external_id or subscriber.email or subscriber.phone} is {subscriber.status}.",
        markup=False,
    )
