"""SQLite lock: one row per key with the owner, the expiry and the fencing epoch.

Expiry uses the wall clock (``time.time``), shared by every process of the machine; a monotonic
clock would be too, but restarts from zero at boot and would make a stored deadline look
decades away. The row is never deleted, so the epoch keeps rising across releases.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable

from ..base import Lock
from .connection import Database

KEY = "scope = ? AND key = ?"


class SqliteLock(Lock):
    """``clock`` (seconds) replaces ``time.time``, for tests that move time by hand."""

    def __init__(self, url: str, prefix: str, clock: Callable[[], float] = time.time) -> None:
        self.prefix = prefix
        self.db = Database(url)
        self._clock = clock

    def _held(self, conn: sqlite3.Connection, key: str) -> tuple[str | None, int]:
        """The live holder (None if free or expired) and the epoch of ``key``."""
        row = conn.execute(
            f"SELECT owner, expires_at, epoch FROM oqron_locks WHERE {KEY}", (self.prefix, key)
        ).fetchone()
        if row is None:
            return None, 0
        owner, expires_at, epoch = row
        return (owner if owner is not None and expires_at > self._clock() else None), int(epoch)

    def acquire(self, key: str, owner: str, ttl: float) -> int | None:
        with self.db.write() as conn:
            holder, epoch = self._held(conn, key)
            if holder not in (None, owner):
                return None
            if holder is None:
                epoch += 1
            conn.execute(
                "INSERT OR REPLACE INTO oqron_locks (scope, key, owner, expires_at, epoch) "
                "VALUES (?, ?, ?, ?, ?)",
                (self.prefix, key, owner, self._clock() + ttl, epoch),
            )
            return epoch

    def renew(self, key: str, owner: str, ttl: float) -> bool:
        with self.db.write() as conn:
            if self._held(conn, key)[0] != owner:
                return False
            conn.execute(f"UPDATE oqron_locks SET expires_at = ? WHERE {KEY}",
                         (self._clock() + ttl, self.prefix, key))
            return True

    def release(self, key: str, owner: str) -> bool:
        with self.db.write() as conn:
            if self._held(conn, key)[0] != owner:
                return False
            conn.execute(f"UPDATE oqron_locks SET owner = NULL, expires_at = 0 WHERE {KEY}",
                         (self.prefix, key))
            return True

    def owner(self, key: str) -> str | None:
        with self.db.read() as conn:
            return self._held(conn, key)[0]

    def epoch(self, key: str) -> int:
        with self.db.read() as conn:
            return self._held(conn, key)[1]

    def reset_after_fork(self) -> None:
        self.db.reset_after_fork()

    def close(self) -> None:
        self.db.close()
