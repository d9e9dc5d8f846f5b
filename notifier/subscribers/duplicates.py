"""One mailbox under several account numbers in one import file, found in bounded memory.

Two rows with different ``external_id`` and the same e-mail are two subscribers by the
import's rules (the account number is the key), so that mailbox gets every letter twice.
That is sometimes right (one accountant for two companies) and often a mistake, so the
import imports both and warns, naming the lines. The rows seen are kept in small SQLite files
on disk (one per process, in a directory the import makes and removes), not in a dict: memory
stays flat whatever the file's size, and a ``GROUP BY`` at the end finds the shared addresses.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class SharedMailbox:
    """An e-mail given to several account numbers; ``accounts``: (account, first line), by line."""

    email: str
    accounts: tuple[tuple[str, int], ...]

    @property
    def message(self) -> str:
        given = ", ".join(f"{account} (line {line})" for account, line in self.accounts)
        return (
            f"e-mail {self.email} is given to {len(self.accounts)} account numbers: {given}; "
            "that mailbox will get the letters of each"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "email": self.email,
            "accounts": [{"external_id": account, "line": line} for account, line in self.accounts],
            "message": self.message,
        }


class SharedMailboxes:
    """Collects (e-mail, account, line) of the clean rows, each process in its own file of one
    directory (the import's worker processes add what they validated); ``found()`` reads them all."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self._db: sqlite3.Connection | None = None

    def add(self, entries: list[tuple[str, str, int]]) -> None:
        """(lower-cased e-mail, account number, line) of clean rows that have both (the rows
        without an account number are matched by e-mail, so they cannot make a second subscriber)."""
        if not entries:
            return
        if self._db is None:  # opened where it is used: a forked worker gets a file of its own
            self._db = sqlite3.connect(self.directory / f"seen-{os.getpid()}.db")
            self._db.execute("PRAGMA journal_mode = OFF")
            self._db.execute("PRAGMA synchronous = OFF")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS seen (email TEXT NOT NULL, account TEXT NOT NULL, line INTEGER NOT NULL)"
            )
        self._db.executemany("INSERT INTO seen VALUES (?, ?, ?)", entries)
        self._db.commit()  # another process reads it at the end

    def found(self, limit: int) -> tuple[list[SharedMailbox], int]:
        """The first ``limit`` shared e-mails (by the line they first appear on) and how many there
        are, across every process's file. One sort of the e-mails alone finds the ones that come
        more than once (most come once: a sort that carried the accounts too took twice as long,
        and sorting parts in threads side by side was slower still); only their rows are read again."""
        self.close()
        files = sorted(str(path) for path in self.directory.glob("seen-*.db"))
        if not files:
            return [], 0
        db = sqlite3.connect("")  # "" = a temporary database on disk, removed on close
        try:
            for n, path in enumerate(files):
                db.execute(f"ATTACH DATABASE ? AS seen{n}", (path,))
            emails = " UNION ALL ".join(f"SELECT email FROM seen{n}.seen" for n in range(len(files)))
            db.execute("CREATE TEMP TABLE twice (email TEXT PRIMARY KEY) WITHOUT ROWID")
            db.execute(f"INSERT INTO twice SELECT email FROM ({emails}) GROUP BY email HAVING count(*) > 1")
            if db.execute("SELECT 1 FROM twice LIMIT 1").fetchone() is None:
                return [], 0
            rows = " UNION ALL ".join(
                f"SELECT email, account, line FROM seen{n}.seen WHERE email IN twice" for n in range(len(files))
            )
            db.execute(f"CREATE TEMP TABLE again AS {rows}")
            # An e-mail is shared when its rows name more than one account.
            db.execute(
                "CREATE TEMP TABLE shared AS SELECT email, min(line) AS line FROM again"
                " GROUP BY email HAVING min(account) <> max(account)"
            )
            total = db.execute("SELECT count(*) FROM shared").fetchone()[0]
            details = db.execute(
                "SELECT s.email, s.line, e.account, min(e.line) FROM again e JOIN"
                " (SELECT email, line FROM shared ORDER BY line LIMIT ?) s ON s.email = e.email"
                " GROUP BY s.email, e.account ORDER BY s.line, min(e.line)",
                (limit,),
            ).fetchall()
        finally:
            db.close()
        shared: dict[str, list[tuple[str, int]]] = {}
        for email, _, account, first in details:
            shared.setdefault(email, []).append((account, first))
        return [SharedMailbox(email, tuple(accounts)) for email, accounts in shared.items()], total

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

