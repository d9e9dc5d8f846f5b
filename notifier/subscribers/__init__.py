"""Subscribers: CSV import (streamed, validated, upserted), adding, listing, counting, lookup.

One module per concern; this package root only re-exports the public names:

* ``validation``: the rules a subscriber row must satisfy (e-mail, phone, region, services,
  locale, no control or direction characters), ``normalise_email``, ``normalise_phone`` and
  ``RowError``;
* ``importing``: ``import_csv`` for a CSV of any size in bounded memory (worker processes
  read and validate ranges of the file, one write transaction per batch) and its ``ImportReport``;
* ``writing``: validated ``Batch``es staged for the database (a SQLite image, PostgreSQL COPY
  text) and upserted by a few set-based statements (``Writer``);
* ``phones``: phone numbers to E.164, as ``phonenumbers`` reads them, with a cheaper path for
  the formats people type;
* ``csv_files``: reading the file a line at a time, so that broken quoting costs only its own
  row, and writing the errors file with formula-looking cells neutralised;
* ``duplicates``: e-mails given to several account numbers in one file, found on disk;
* ``lookup``: find a subscriber by account number, e-mail, phone in any common format or
  part of the name; add, list, count and unsubscribe one.

It does not choose an incident's audience (``incidents``) nor print anything
(``cli.subscribers``).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

# Which submodule holds each name: the package imports a submodule when one of its names is
# first used, so a command that only looks a subscriber up (``hotline lookup``) does not load
# the CSV import's machinery.
_HOMES = {
    "AmbiguousSubscriber": "notifier.errors",
    "spreadsheet_safe": "notifier.subscribers.csv_files",
    **dict.fromkeys(("SharedMailbox", "SharedMailboxes"), "notifier.subscribers.duplicates"),
    **dict.fromkeys(("KEPT_REJECTIONS", "PARALLEL_FROM_BYTES", "ImportReport", "Rejection", "import_csv",
                     "validate_rows"), "notifier.subscribers.importing"),  # fmt: skip
    **dict.fromkeys(("add_subscriber", "count_subscribers", "find", "get_one", "list_subscribers", "unsubscribe"),
                    "notifier.subscribers.lookup"),  # fmt: skip
    **dict.fromkeys(("COLUMNS", "MAX_EXTERNAL_ID", "MAX_FIELD", "MAX_NAME", "RowError", "RowRules", "clean",
                     "normalise_email", "normalise_phone"), "notifier.subscribers.validation"),  # fmt: skip
    **dict.fromkeys(("Batch", "Writer"), "notifier.subscribers.writing"),
}

if TYPE_CHECKING:
    from notifier.errors import AmbiguousSubscriber
    from notifier.subscribers.csv_files import spreadsheet_safe
    from notifier.subscribers.duplicates import SharedMailbox, SharedMailboxes
    from notifier.subscribers.importing import (
        KEPT_REJECTIONS,
        PARALLEL_FROM_BYTES,
        ImportReport,
        Rejection,
        import_csv,
        validate_rows,
    )
    from notifier.subscribers.lookup import (
        add_subscriber,
        count_subscribers,
        find,
        get_one,
        list_subscribers,
        unsubscribe,
    )
    from notifier.subscribers.validation import (
        COLUMNS,
        MAX_EXTERNAL_ID,
        MAX_FIELD,
        MAX_NAME,
        RowError,
        RowRules,
        clean,
        normalise_email,
        normalise_phone,
    )
    from notifier.subscribers.writing import Batch, Writer


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(home), name)
    globals()[name] = value
    return value


__all__ = [
    "COLUMNS",
    "KEPT_REJECTIONS",
    "MAX_EXTERNAL_ID",
    "MAX_FIELD",
    "MAX_NAME",
    "PARALLEL_FROM_BYTES",
    "AmbiguousSubscriber",
    "Batch",
    "ImportReport",
    "Rejection",
    "RowError",
    "RowRules",
    "SharedMailbox",
    "SharedMailboxes",
    "Writer",
    "add_subscriber",
    "clean",
    "count_subscribers",
    "find",
    "get_one",
    "import_csv",
    "list_subscribers",
    "normalise_email",
    "normalise_phone",
    "spreadsheet_safe",
    "unsubscribe",
    "validate_rows",
]
