"""One mailbox under several account numbers in one import file, found in bounded memory.

Two rows with different ``external_id`` and the same e-mail are two subscribers by the
import's rules (the account number is the key), so that mailbox gets every letter twice.
That is sometimes right (one accountant for two companies) and often a mistake, so the
import imports both and warns, naming the lines. The rows seen are kept in a private
temporary SQLite database on disk (``sqlite3.connect("")``), not in a dict: memory stays
flat whatever the file's size, and one ``GROUP BY`` at the end finds the shared addresses.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
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
    """Collects (e-mail, account, line) of the clean rows; ``found()`` lists the shared e-mails."""

    def __init__(self) -> None:
        self._db = sqlite3.connect("")  # "" = a temporary database on disk, removed on close
        self._db.execute("PRAGMA journal_mode = OFF")
        self._db.execute("PRAGMA synchronous = OFF")
        self._db.execute(
            "CREATE TABLE seen (email TEXT NOT NULL, account TEXT NOT NULL, line INTEGER NOT NULL)"
        )

    def add(self, entries: Iterable[tuple[str, str, int]]) -> None:
        """(lower-cased e-mail, account number, line) of clean rows that have both (the rows
        without an account number are matched by e-mail, so they cannot make a second subscriber)."""
        self._db.executemany("INSERT INTO seen VALUES (?, ?, ?)", entries)

    def found(self, limit: int) -> tuple[list[SharedMailbox], int]:
        """The first ``limit`` shared e-mails (by the line they first appear on) and how many there are."""
        self._db.execute(
            "CREATE TEMP TABLE firsts AS SELECT email, account, min(line) AS line FROM seen GROUP BY email, account"
        )
        self._db.execute(
            "CREATE TEMP TABLE shared AS SELECT email, min(line) AS line FROM firsts GROUP BY email HAVING count(*) > 1"
        )
        total = self._db.execute("SELECT count(*) FROM shared").fetchone()[0]
        rows = self._db.execute(
            "SELECT f.email, f.account, f.line FROM firsts f JOIN"
            " (SELECT email, line FROM shared ORDER BY line LIMIT ?) s ON s.email = f.email"
            " ORDER BY s.line, f.line",
            (limit,),
        ).fetchall()
        by_email: dict[str, list[tuple[str, int]]] = {}
        for email, account, line in rows:
            by_email.setdefault(email, []).append((account, line))
        return [SharedMailbox(email, tuple(accounts)) for email, accounts in by_email.items()], total

    def close(self) -> None:
        self._db.close()
