"""Reach under an adapter to damage a record on purpose (tests of bad input)."""

from __future__ import annotations

import sqlite3
from typing import Any

from oqron.adapters.redis import RedisStorage
from oqron.adapters.sqlite import SqliteStorage


def corrupt_record(storage: Any, job_id: str, data: str = "{not json") -> None:
    """Make the stored record of ``job_id`` undecodable (on Redis: its ``data`` field holds
    ``data``, any text that is not one JSON value)."""
    if isinstance(storage, RedisStorage):
        storage.client.hset(f"{storage.prefix}job:{job_id}", "data", data)
    elif isinstance(storage, SqliteStorage):
        with sqlite3.connect(storage.db.path) as conn:
            conn.execute("UPDATE oqron_jobs SET record = '{not json' WHERE scope = ? AND id = ?",
                         (storage.prefix, job_id))
    else:
        raise NotImplementedError(type(storage).__name__)


def raw_status(storage: Any, job_id: str) -> str | None:
    """The status column/field as stored, without decoding the record."""
    if isinstance(storage, RedisStorage):
        return storage.client.hget(f"{storage.prefix}job:{job_id}", "status")  # type: ignore[no-any-return]
    if isinstance(storage, SqliteStorage):
        with sqlite3.connect(storage.db.path) as conn:
            row = conn.execute("SELECT status FROM oqron_jobs WHERE scope = ? AND id = ?",
                               (storage.prefix, job_id)).fetchone()
        return row[0] if row else None
    raise NotImplementedError(type(storage).__name__)
