"""One mailbox under several account numbers in one import file, found in bounded memory.

Two rows with different ``external_id`` and the same e-mail are two subscribers by the
import's rules (the account number is the key), so that mailbox gets every letter twice.
That is sometimes right (one accountant for two companies) and often a mistake, so the
import imports both and warns, naming the lines. The rows seen are kept in small SQLite files
on disk (one per process, in a directory the import makes and removes), not in a dict: memory
stays flat whatever the file's size, and one ``GROUP BY`` at the end finds the shared addresses.
"""

from __future__ import annotations

import os
import sqlite3
from concurrent.futures import ThreadPoolExecutor
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
        are, across every process's file: the e-mails split into parts by length, one thread and
        one sort per part (SQLite works without holding Python's lock, so they run side by side)."""
        self.close()
        files = sorted(str(path) for path in self.directory.glob("seen-*.db"))
        if not files:
            return [], 0
        parts = max(1, min(4, os.cpu_count() or 1))
        with ThreadPoolExecutor(parts) as pool:
            found = list(pool.map(lambda part: _shared_in_part(files, part, parts, limit), range(parts)))
        first = sorted((line, email) for _, shared in found for email, (line, _) in shared.items())[:limit]
        details = {email: accounts for _, shared in found for email, (_, accounts) in shared.items()}
        mailboxes = [
            SharedMailbox(email, tuple(sorted(details[email], key=lambda a: a[1]))) for _, email in first
        ]
        return mailboxes, sum(total for total, _ in found)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


def _shared_in_part(
    files: list[str], part: int, parts: int, limit: int
) -> tuple[int, dict[str, tuple[int, list[tuple[str, int]]]]]:
    """In one part of the e-mails (by length): how many are shared, and the first ``limit`` of
    them with their first line and (account, first line) each."""
    db = sqlite3.connect("")  # "" = a temporary database on disk, removed on close
    try:
        for n, path in enumerate(files):
            db.execute(f"ATTACH DATABASE ? AS seen{n}", (path,))
        every = " UNION ALL ".join(
            f"SELECT email, account, line FROM seen{n}.seen WHERE length(email) % {parts} = {part}"
            for n in range(len(files))
        )
        # One sort: an e-mail is shared when its rows name more than one account.
        db.execute(
            f"CREATE TEMP TABLE shared AS SELECT email, min(line) AS line FROM ({every})"
            " GROUP BY email HAVING min(account) <> max(account)"
        )
        total = db.execute("SELECT count(*) FROM shared").fetchone()[0]
        rows = db.execute(
            f"SELECT s.email, s.line, e.account, min(e.line) FROM ({every}) e JOIN"
            " (SELECT email, line FROM shared ORDER BY line LIMIT ?) s ON s.email = e.email"
            " GROUP BY s.email, e.account",
            (limit,),
        ).fetchall()
    finally:
        db.close()
    shared: dict[str, tuple[int, list[tuple[str, int]]]] = {}
    for email, line, account, first in rows:
        shared.setdefault(email, (line, []))[1].append((account, first))
    return total, shared
