"""Subscribers: CSV import (streamed, validated, upserted), adding, listing, counting, lookup.

Owns the rules a subscriber row must satisfy (e-mail, phone, region, services, locale, no
control characters), the import that applies them to a CSV of any size in bounded memory
(one write transaction per batch, set-based statements that run the same on SQLite and
PostgreSQL), and finding a subscriber by account number, e-mail, phone in any common format
or part of the name. It does not choose an incident's audience (``incidents``) nor print
anything (``cli.subscribers``).

Import rules worth knowing:

* A row is matched to an existing subscriber by ``external_id`` when it has one, else by
  e-mail (case-insensitive), else by phone; it updates that subscriber or inserts a new one.
* An update never changes ``status``: an unsubscribed or bounced subscriber stays so.
* When the same key appears twice in one file, the later row wins (counted as ``superseded``
  when both fall in one batch, as an update otherwise).
"""

from __future__ import annotations

import contextlib
import csv
import io
import multiprocessing
import os
import re
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import islice
from typing import IO, Any, TypeVar

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from sqlalchemy import and_, func, or_, select
from sqlalchemy.engine import Engine
from sqlmodel import Session

from notifier.config import LOCALES, Config
from notifier.db import write_session
from notifier.errors import NotifierError, SubscriberNotFound, UsageError
from notifier.models import SUBSCRIBER_STATUSES, Subscriber, utcnow

COLUMNS: tuple[str, ...] = ("external_id", "name", "email", "phone", "region", "services", "locale")
MAX_NAME = 200
MAX_EXTERNAL_ID = 100
MAX_FIELD = 1000
KEPT_REJECTIONS = 20
PARALLEL_FROM_BYTES = 4_000_000
_T = TypeVar("_T")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_NOT_UTF8 = re.compile(r"[\udc80-\udcff]")  # bytes that were not UTF-8, kept by surrogateescape
_SUSPECT = re.compile(r"[\x00-\x1f\x7f\udc80-\udcff]")
# Plain ASCII dot-atom addresses: email_validator leaves the local part as it is, so only the
# domain needs its (slow) verdict, which is cached. Anything else goes to email_validator whole.
_PLAIN_EMAIL = re.compile(
    r"([A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*)@([A-Za-z0-9.-]+)"
)
_PHONE_LIKE = re.compile(r"[\d\s()+\-.]{5,}")
_TABLE = Subscriber.__table__  # type: ignore[attr-defined]
_COMPARED = ("name", "name_key", "email", "email_key", "phone", "region", "services", "locale")


class RowError(ValueError):
    """Why one row cannot be imported; ``str()`` is the reason shown to the user."""


# Validation --------------------------------------------------------------------------------


@lru_cache(maxsize=4096)
def _domain(domain: str) -> str:
    """The normalised domain, or EmailNotValidError, as email_validator judges it."""
    return validate_email("x@" + domain, check_deliverability=False).domain


def normalise_email(raw: str) -> str:
    """The normalised form of an e-mail address (email_validator's rules, no DNS lookups)."""
    match = _PLAIN_EMAIL.fullmatch(raw)
    try:
        if match and len(match.group(1)) <= 64 and len(raw) <= 254:
            return f"{match.group(1)}@{_domain(match.group(2))}"
        return validate_email(raw, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise RowError(f"e-mail {raw!r} is not valid: {exc}") from None


def normalise_phone(raw: str, country: str) -> str:
    """A phone number in any common format -> E.164 (``8 912 …`` is read as Russia's trunk prefix)."""
    try:
        number = phonenumbers.parse(raw, country)
    except phonenumbers.NumberParseException:
        raise RowError(f"phone {raw!r} is not a phone number") from None
    if not phonenumbers.is_valid_number(number):
        raise RowError(f"phone {raw!r} is not a valid number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _services(raw: str, config: Config) -> str:
    codes = list(dict.fromkeys(code.strip() for code in raw.split(";") if code.strip()))
    for code in codes:
        if code not in config.services:
            raise RowError(f"unknown service {code!r} (known: {', '.join(sorted(config.services))})")
    return ";" + ";".join(codes) + ";" if codes else ""


def clean(values: dict[str, str], config: Config) -> dict[str, Any]:
    """One subscriber's raw fields -> the columns to store; raises RowError with the reason."""
    if _SUSPECT.search("".join(values.values())):
        if _NOT_UTF8.search("".join(values.values())):
            raise RowError("not UTF-8 text (save the file as UTF-8)")
        column = next(c for c in COLUMNS if _CONTROL.search(values.get(c) or ""))
        raise RowError(f"{column} contains a control character (a line break, tab or similar)")
    if any(len(value) > MAX_FIELD for value in values.values()):
        column = next(c for c in COLUMNS if len(values.get(c) or "") > MAX_FIELD)
        raise RowError(f"{column} is longer than {MAX_FIELD} characters")
    external_id = (values.get("external_id") or "").strip()
    if len(external_id) > MAX_EXTERNAL_ID:
        raise RowError(f"external_id is longer than {MAX_EXTERNAL_ID} characters")
    name = " ".join((values.get("name") or "").split())
    if len(name) > MAX_NAME:
        raise RowError(f"name is longer than {MAX_NAME} characters")
    email_raw, phone_raw = (values.get("email") or "").strip(), (values.get("phone") or "").strip()
    if not email_raw and not phone_raw:
        raise RowError("needs an e-mail or a phone (both are empty)")
    email = normalise_email(email_raw) if email_raw else None
    phone = normalise_phone(phone_raw, config.notifier.default_country) if phone_raw else None
    region = (values.get("region") or "").strip()
    if not region:
        raise RowError("region is empty")
    if region not in config.regions:
        raise RowError(f"unknown region {region!r}")
    locale = (values.get("locale") or "").strip().lower() or config.notifier.default_locale
    if locale not in LOCALES:
        raise RowError(f"locale must be one of {', '.join(LOCALES)}, not {locale!r}")
    return {
        "external_id": external_id or None,
        "name": name,
        "name_key": name.casefold(),
        "email": email,
        "email_key": email.lower() if email else None,
        "phone": phone,
        "region": region,
        "services": _services(values.get("services") or "", config),
        "locale": locale,
    }


# CSV import --------------------------------------------------------------------------------


@dataclass
class Rejection:
    line: int
    reason: str


@dataclass
class ImportReport:
    """What an import did; ``rejections`` keeps only the first few (see ``errors_writer``)."""

    rows: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    superseded: int = 0
    bytes_read: int = 0
    bytes_total: int | None = None
    seconds: float = 0.0
    rejections: list[Rejection] = field(default_factory=list)

    @property
    def imported(self) -> int:
        return self.inserted + self.updated + self.unchanged

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows, "inserted": self.inserted, "updated": self.updated,
            "unchanged": self.unchanged, "rejected": self.rejected, "superseded": self.superseded,
            "seconds": round(self.seconds, 3),
            "rejections": [{"line": r.line, "reason": r.reason} for r in self.rejections],
        }  # fmt: skip


class _CsvSource:
    """Opens a path (or takes an open text file) and yields (line number, fields)."""

    def __init__(self, path_or_file: str | os.PathLike[str] | IO[str]) -> None:
        is_path = isinstance(path_or_file, str | os.PathLike)
        self.name = str(path_or_file) if is_path else str(getattr(path_or_file, "name", "<CSV>"))
        self._raw: IO[bytes] | None = None
        if is_path:
            try:
                self._raw = open(path_or_file, "rb")  # noqa: SIM115  (closed in close())
                self.total: int | None = os.fstat(self._raw.fileno()).st_size
            except FileNotFoundError:
                raise UsageError(f"{self.name}: no such file") from None
            except IsADirectoryError:
                raise UsageError(f"{self.name}: is a directory, not a CSV file") from None
            except OSError as exc:
                raise UsageError(f"{self.name}: cannot read it: {exc.strerror}") from None
            self.text: IO[str] = io.TextIOWrapper(
                self._raw, encoding="utf-8-sig", errors="surrogateescape", newline=""
            )
        else:
            self.text, self.total = path_or_file, None

    @property
    def position(self) -> int:
        return self._raw.tell() if self._raw else 0

    def rows(self) -> Iterator[tuple[int, list[str]]]:
        reader = csv.reader(self.text, strict=True)
        line = 1
        try:
            for fields in reader:
                yield line, fields
                line = reader.line_num + 1
        except csv.Error as exc:
            raise UsageError(f"{self.name}: line {line}: not valid CSV: {exc}") from None

    def close(self) -> None:
        if self._raw:
            self.text.close()


def _header(name: str, fields: list[str] | None) -> list[str]:
    if fields is None:
        raise UsageError(f"{name}: the file is empty; expected the header {','.join(COLUMNS)}")
    header = [column.strip().lstrip("\ufeff").lower() for column in fields]
    unknown = [column for column in header if column not in COLUMNS]
    missing = [column for column in COLUMNS if column not in header]
    doubled = sorted({column for column in header if header.count(column) > 1})
    problems = []
    if missing:
        problems.append("missing column" + ("s " if len(missing) > 1 else " ") + ", ".join(missing))
    if unknown:
        problems.append(
            "unknown column" + ("s " if len(unknown) > 1 else " ") + ", ".join(map(repr, unknown))
        )
    if doubled:
        problems.append("repeated column" + ("s " if len(doubled) > 1 else " ") + ", ".join(doubled))
    if problems:
        raise UsageError(f"{name}: bad header: {'; '.join(problems)} (expected {','.join(COLUMNS)})")
    return header


def import_csv(
    engine: Engine,
    config: Config,
    path_or_file: str | os.PathLike[str] | IO[str],
    *,
    batch_size: int = 5000,
    on_progress: Callable[[ImportReport], None] | None = None,
    errors_writer: IO[str] | None = None,
    workers: int | None = None,
) -> ImportReport:
    """Import subscribers from a CSV file: validate each row, upsert the valid ones batch by batch.

    Raises UsageError (before importing anything) when the file cannot be read or its header
    is wrong; broken CSV quoting part-way stops there (the batches before it stay imported);
    a row that is not UTF-8 is rejected like any other bad row. Rejected rows go to ``report`` and ``errors_writer``.
    ``workers`` processes validate rows (phone parsing is the costly part) while this one
    writes; None = one per CPU for files over a few megabytes, else validate in-process.
    """
    if batch_size < 1:
        raise UsageError("--batch-size must be at least 1")
    started = time.perf_counter()
    source = _CsvSource(path_or_file)
    report = ImportReport(bytes_total=source.total)
    if workers is None:
        big = (source.total or 0) > PARALLEL_FROM_BYTES
        workers = min(os.cpu_count() or 1, 4) if big else 1
    try:
        rows = source.rows()
        header = _header(source.name, next(rows, (1, None))[1])
        errors = csv.writer(errors_writer) if errors_writer is not None else None
        if errors:
            errors.writerow([*header, "line", "reason"])
        for count, cleaned, rejected in _validated(_chunks(rows, batch_size), header, config, workers):
            report.rows += count
            for line, reason, fields in rejected:
                _reject(report, errors, line, reason, fields, len(header))
            if cleaned:
                with write_session(engine) as session:
                    upsert_batch(session, cleaned, report)
            report.bytes_read = source.position
            if on_progress:
                on_progress(report)
    finally:
        source.close()
    report.bytes_read = report.bytes_total or report.bytes_read
    report.seconds = time.perf_counter() - started
    if on_progress:
        on_progress(report)
    return report


_Raw = list[tuple[int, list[str]]]
_Validated = tuple[int, list[dict[str, Any]], list[tuple[int, str, list[str]]]]


def validate_rows(header: list[str], config: Config, rows: _Raw) -> _Validated:
    """(line, fields) rows -> (how many, the clean ones, the rejected ones with their reason)."""
    cleaned, rejected = [], []
    for line, fields in rows:
        try:
            if len(fields) != len(header):
                raise RowError(f"expected {len(header)} fields, found {len(fields)}")
            cleaned.append(clean(dict(zip(header, fields, strict=True)), config))
        except RowError as exc:
            rejected.append((line, str(exc), fields))
    return len(rows), cleaned, rejected


_worker_config: Config | None = None


def _start_worker(config: Config) -> None:
    global _worker_config
    _worker_config = config


def _validate_in_worker(header: list[str], rows: _Raw) -> _Validated:
    assert _worker_config is not None
    return validate_rows(header, _worker_config, rows)


def _validated(
    batches: Iterable[_Raw], header: list[str], config: Config, workers: int
) -> Iterator[_Validated]:
    """Validated batches in file order; with workers, at most 2 per worker in flight (bounded memory)."""
    if workers <= 1:
        for batch in batches:
            yield validate_rows(header, config, batch)
        return
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(
        workers, mp_context=context, initializer=_start_worker, initargs=(config,)
    ) as pool:
        pending: deque[Future[_Validated]] = deque()
        for batch in batches:
            pending.append(pool.submit(_validate_in_worker, header, batch))
            if len(pending) >= 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _reject(report: ImportReport, errors: Any, line: int, reason: str, fields: list[str], width: int) -> None:
    report.rejected += 1
    if len(report.rejections) < KEPT_REJECTIONS:
        report.rejections.append(Rejection(line, reason))
    if errors is not None:
        readable = [value.encode("utf-8", "surrogateescape").decode("utf-8", "replace") for value in fields]
        errors.writerow([*(readable + [""] * width)[:width], line, reason])


# Set-based upsert --------------------------------------------------------------------------


def _key(row: dict[str, Any]) -> tuple[str, str]:
    if row["external_id"]:
        return ("external_id", row["external_id"])
    if row["email_key"]:
        return ("email_key", row["email_key"])
    return ("phone", row["phone"])


def _chunks(items: Iterable[_T], size: int) -> Iterator[list[_T]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def _existing(session: Session, by_key: dict[tuple[str, str], dict[str, Any]]) -> dict[tuple[str, str], Any]:
    """The stored subscriber each key names: a few IN queries, whatever the batch size."""
    found: dict[tuple[str, str], Any] = {}
    columns = [_TABLE.c.id, _TABLE.c.external_id, *(_TABLE.c[name] for name in _COMPARED)]
    for kind in ("external_id", "email_key", "phone"):
        values = [value for k, value in by_key if k == kind]
        column = _TABLE.c[kind]
        for chunk in _chunks(values, 2000):
            # Rows without an account number prefer a stored subscriber without one, then the oldest.
            query = (
                select(*columns)
                .where(column.in_(chunk))
                .order_by(_TABLE.c.external_id.is_not(None), _TABLE.c.id)
            )
            for stored in session.execute(query):
                found.setdefault((kind, getattr(stored, kind)), stored)
    return found


_INSERTED = ("external_id", *_COMPARED, "status", "created_at", "updated_at")


def upsert_batch(session: Session, rows: list[dict[str, Any]], report: ImportReport) -> None:
    """Insert new subscribers and update changed ones, in one executemany of each kind.

    The statements go to the driver as plain tuples (SQLAlchemy's per-row parameter handling
    cost as much as the database's own work); the one timestamp is converted once per batch.
    """
    by_key: dict[tuple[str, str], dict[str, Any]] = {}
    for row in rows:
        key = _key(row)
        if key in by_key:
            report.superseded += 1
        by_key[key] = row
    existing = _existing(session, by_key)
    connection = session.connection()
    dialect = connection.dialect
    to_db = _TABLE.c.updated_at.type.bind_processor(dialect)
    now = to_db(utcnow()) if to_db else utcnow()
    inserts, updates = [], []
    for key, row in by_key.items():
        stored = existing.get(key)
        if stored is None:
            inserts.append((row["external_id"], *(row[name] for name in _COMPARED), "active", now, now))
        elif any(getattr(stored, name) != row[name] for name in _COMPARED):
            updates.append((*(row[name] for name in _COMPARED), now, stored.id))
        else:
            report.unchanged += 1
    mark = "?" if dialect.paramstyle == "qmark" else "%s"
    if inserts:
        columns = ", ".join(_INSERTED)
        values = ", ".join([mark] * len(_INSERTED))
        connection.exec_driver_sql(f"INSERT INTO subscriber ({columns}) VALUES ({values})", inserts)
    if updates:
        assignments = ", ".join(f"{name} = {mark}" for name in (*_COMPARED, "updated_at"))
        connection.exec_driver_sql(f"UPDATE subscriber SET {assignments} WHERE id = {mark}", updates)
    report.inserted += len(inserts)
    report.updated += len(updates)


# One subscriber at a time ------------------------------------------------------------------


def add_subscriber(session: Session, config: Config, **fields: Any) -> Subscriber:
    """Add one subscriber (same rules as the import); refuses one that already exists."""
    unknown = set(fields) - set(COLUMNS)
    if unknown:
        raise UsageError(f"unknown subscriber field(s): {', '.join(sorted(unknown))}")
    services = fields.get("services") or ""
    if not isinstance(services, str):
        fields["services"] = ";".join(services)
    try:
        row = clean({name: str(value) for name, value in fields.items() if value is not None}, config)
    except RowError as exc:
        raise UsageError(str(exc)) from None
    kind, value = _key(row)
    if session.execute(select(_TABLE.c.id).where(_TABLE.c[kind] == value)).first():
        what = {"external_id": "account number", "email_key": "e-mail", "phone": "phone"}[kind]
        raise UsageError(f"a subscriber with the {what} {value!r} already exists (import a CSV to update it)")
    now = utcnow()
    subscriber = Subscriber(**row, status="active", created_at=now, updated_at=now)
    session.add(subscriber)
    session.flush()
    return subscriber


def _service_filter(services: Iterable[str]) -> Any:
    return or_(*(Subscriber.services.like(f"%;{code};%") for code in services))  # type: ignore[attr-defined]


def list_subscribers(
    session: Session,
    *,
    region: str | None = None,
    service: str | None = None,
    status: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[Subscriber]:
    """Subscribers in the order they were added, optionally of one region, service or status."""
    query = select(Subscriber).order_by(Subscriber.id).limit(limit).offset(offset)  # type: ignore[arg-type]
    if region:
        query = query.where(Subscriber.region == region)
    if service:
        query = query.where(_service_filter([service]))
    if status:
        _check_status(status)
        query = query.where(Subscriber.status == status)
    return list(session.execute(query).scalars().all())


def count_subscribers(
    session: Session,
    *,
    regions: Iterable[str] = (),
    services: Iterable[str] = (),
    status: str | None = "active",
) -> int:
    """How many subscribers (of ``status``; None = any) are in any of ``regions`` and use any of ``services``."""
    conditions = []
    regions, services = list(regions), list(services)
    if regions:
        conditions.append(Subscriber.region.in_(regions))  # type: ignore[attr-defined]
    if services:
        conditions.append(_service_filter(services))
    if status:
        _check_status(status)
        conditions.append(Subscriber.status == status)
    query = select(func.count()).select_from(Subscriber)
    if conditions:
        query = query.where(and_(*conditions))
    return session.execute(query).scalar_one()


def _check_status(status: str) -> None:
    if status not in SUBSCRIBER_STATUSES:
        raise UsageError(f"status must be one of {', '.join(SUBSCRIBER_STATUSES)}, not {status!r}")


# Lookup ------------------------------------------------------------------------------------


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def find(session: Session, config: Config, key_or_query: str, *, limit: int = 50) -> list[Subscriber]:
    """Subscribers an identifier names: account number, e-mail, phone (any format) — exact
    matches — else those whose name contains the text (case-insensitive, Cyrillic included)."""
    query = " ".join(key_or_query.split())
    if not query:
        raise UsageError("give an account number, e-mail, phone or part of a name to look for")
    exact = [Subscriber.external_id == query]
    if "@" in query:
        exact.append(Subscriber.email_key == query.lower())
    if _PHONE_LIKE.fullmatch(query):
        with contextlib.suppress(RowError):  # not a phone after all: the name search may still match
            exact.append(Subscriber.phone == normalise_phone(query, config.notifier.default_country))
    found = (
        session.execute(select(Subscriber).where(or_(*exact)).order_by(Subscriber.id).limit(limit))
        .scalars()
        .all()
    )
    if found or not any(ch.isalpha() for ch in query):
        return list(found)
    pattern = f"%{_like_escape(query.casefold())}%"
    by_name = select(Subscriber).where(Subscriber.name_key.like(pattern, escape="\\"))  # type: ignore[attr-defined]
    return list(session.execute(by_name.order_by(Subscriber.id).limit(limit)).scalars().all())


class AmbiguousSubscriber(NotifierError):
    exit_code = 2

    def __init__(self, key: str, found: list[Subscriber]) -> None:
        sample = ", ".join(s.external_id or s.email or s.phone or f"#{s.id}" for s in found[:3])
        super().__init__(
            f"{key!r} matches {len(found)}{'+' if len(found) >= 50 else ''} subscribers ({sample}"
            f"{', …' if len(found) > 3 else ''}); give an account number, e-mail or phone"
        )


def get_one(session: Session, config: Config, key: str) -> Subscriber:
    """The one subscriber ``key`` names; SubscriberNotFound or AmbiguousSubscriber otherwise."""
    found = find(session, config, key)
    if not found:
        raise SubscriberNotFound(key)
    if len(found) > 1:
        raise AmbiguousSubscriber(key, found)
    return found[0]


def unsubscribe(session: Session, key: str | int | Subscriber, *, config: Config | None = None) -> Subscriber:
    """Stop all mail to one subscriber (idempotent; a bounced one stays bounced).

    ``key`` is a Subscriber, its id, or (with ``config``) anything ``get_one`` accepts; without
    ``config`` a string must be an exact account number, e-mail or E.164 phone.
    """
    if isinstance(key, Subscriber):
        subscriber = key
    elif isinstance(key, int):
        found = session.get(Subscriber, key)
        if found is None:
            raise SubscriberNotFound(f"#{key}")
        subscriber = found
    elif config is not None:
        subscriber = get_one(session, config, key)
    else:
        text = key.strip()
        exact = or_(
            Subscriber.external_id == text, Subscriber.email_key == text.lower(), Subscriber.phone == text
        )
        matches = list(session.execute(select(Subscriber).where(exact).limit(50)).scalars().all())
        if not matches:
            raise SubscriberNotFound(text)
        if len(matches) > 1:
            raise AmbiguousSubscriber(text, matches)
        subscriber = matches[0]
    if subscriber.status == "active":
        subscriber.status, subscriber.updated_at = "unsubscribed", utcnow()
        session.add(subscriber)
        session.flush()
    return subscriber
