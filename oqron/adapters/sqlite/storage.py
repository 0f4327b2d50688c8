"""SQLite storage: one row per job (the record as JSON plus indexed queue, status and times),
one row per document. Conditional updates read and write inside one ``BEGIN IMMEDIATE``
transaction, so the check and the write are atomic across processes."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from ... import codec
from ..base import APPEND_CAPS, Storage
from .connection import Database

#: Rows deleted per transaction when pruning, so a big prune never holds the write lock long.
PRUNE_BATCH = 1000
#: Ids per ``IN (...)`` list (SQLite limits the number of bound parameters).
CHUNK = 500

JOB_COLUMNS = "INSERT INTO oqron_jobs (scope, id, queue, status, status_at, created_at, record)"


class SqliteStorage(Storage):
    """``clock`` (seconds) stamps status changes and creations; tests may replace it."""

    def __init__(self, url: str, prefix: str, clock: Callable[[], float] = time.time) -> None:
        self.prefix = prefix
        self.db = Database(url)
        self._clock = clock

    def create_jobs(self, records: Sequence[Mapping[str, Any]]) -> list[bool]:
        if not records:
            return []
        now = self._clock()
        with self.db.write() as conn:
            taken = set(self._existing(conn, [str(r["id"]) for r in records]))
            flags, rows = [], []
            for record in records:
                job_id = str(record["id"])
                flags.append(job_id not in taken)
                if job_id not in taken:
                    taken.add(job_id)
                    rows.append((self.prefix, job_id, record["queue"], record["status"], now, now,
                                 codec.dumps(dict(record))))
            conn.executemany(f"{JOB_COLUMNS} VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
            queues = {(self.prefix, row[2]) for row in rows}
            conn.executemany("INSERT OR IGNORE INTO oqron_job_queues VALUES (?, ?)", sorted(queues))
        return flags

    def _existing(self, conn: sqlite3.Connection, job_ids: Sequence[str]) -> Iterator[str]:
        for part in _chunks(job_ids):
            marks = ",".join("?" * len(part))
            sql = f"SELECT id FROM oqron_jobs WHERE scope = ? AND id IN ({marks})"
            for (job_id,) in conn.execute(sql, (self.prefix, *part)):
                yield job_id

    def get_job(self, job_id: str) -> dict[str, Any] | None:
        return self.get_jobs([job_id])[0]

    def get_jobs(self, job_ids: Sequence[str]) -> list[dict[str, Any] | None]:
        found: dict[str, dict[str, Any]] = {}
        with self.db.read() as conn:
            for part in _chunks(job_ids):
                marks = ",".join("?" * len(part))
                sql = (f"SELECT id, queue, status, record FROM oqron_jobs "
                       f"WHERE scope = ? AND id IN ({marks})")
                for job_id, queue, status, text in conn.execute(sql, (self.prefix, *part)):
                    found[job_id] = _decode(job_id, queue, status, text)
        return [found.get(job_id) for job_id in job_ids]

    def update_job(
        self,
        job_id: str,
        changes: Mapping[str, Any],
        *,
        expect: Mapping[str, Any] | None = None,
        expect_status: Sequence[str] | None = None,
        append: Mapping[str, Sequence[Any]] | None = None,
    ) -> bool:
        if expect_status is not None and not expect_status:
            return False  # no status is allowed
        with self.db.write() as conn:
            row = conn.execute(
                "SELECT rowid, status_at, queue, status, record FROM oqron_jobs WHERE scope = ? AND id = ?",
                (self.prefix, job_id),
            ).fetchone()
            if row is None:
                return False
            rowid, status_at = row[0], row[1]
            record = _decode(job_id, row[2], row[3], row[4])
            if expect and any(record.get(k) != v for k, v in expect.items()):
                return False
            if expect_status is not None and record["status"] not in expect_status:
                return False
            if changes.get("status", record["status"]) != record["status"]:
                status_at = self._clock()
            record.update(changes)
            for name, entries in (append or {}).items():
                merged = list(record.get(name) or []) + list(entries)
                record[name] = merged[-APPEND_CAPS.get(name, len(merged)) :]
            conn.execute(
                "UPDATE oqron_jobs SET queue = ?, status = ?, status_at = ?, record = ? WHERE rowid = ?",
                (record["queue"], record["status"], status_at, codec.dumps(record), rowid),
            )
            if "queue" in changes:
                conn.execute("INSERT OR IGNORE INTO oqron_job_queues VALUES (?, ?)",
                             (self.prefix, record["queue"]))
            return True

    def list_jobs(
        self,
        queue: str | None = None,
        status: str | None = None,
        limit: int = 100,
        offset: int = 0,
        oldest_first: bool = False,
    ) -> list[dict[str, Any]]:
        if limit <= 0:
            return []
        where, params = _filter(self.prefix, queue, status)
        column = "status_at" if status is not None else "created_at"
        order = "" if oldest_first else " DESC"
        sql = (f"SELECT id, queue, status, record FROM oqron_jobs WHERE {where} "
               f"ORDER BY {column}{order}, rowid{order} LIMIT ? OFFSET ?")
        with self.db.read() as conn:
            rows = conn.execute(sql, (*params, limit, max(0, offset))).fetchall()
        return [_decode(*row) for row in rows]

    def count_jobs(self, queue: str | None = None, status: str | None = None) -> int:
        where, params = _filter(self.prefix, queue, status)
        with self.db.read() as conn:
            return int(conn.execute(f"SELECT count(*) FROM oqron_jobs WHERE {where}", params).fetchone()[0])

    def queue_names(self) -> list[str]:
        with self.db.read() as conn:
            rows = conn.execute(
                "SELECT queue FROM oqron_job_queues WHERE scope = ? ORDER BY queue", (self.prefix,)
            ).fetchall()
        return [name for (name,) in rows]

    def delete_jobs(self, job_ids: Sequence[str]) -> int:
        deleted = 0
        with self.db.write() as conn:
            for part in _chunks(job_ids):
                marks = ",".join("?" * len(part))
                sql = f"DELETE FROM oqron_jobs WHERE scope = ? AND id IN ({marks})"
                deleted += conn.execute(sql, (self.prefix, *part)).rowcount
        return deleted

    def prune_jobs(
        self, queue: str, status: str, *, keep: int | None = None, older_than: float | None = None
    ) -> int:
        if keep is None and older_than is None:
            return 0
        cutoff = None if older_than is None else self._clock() - older_than
        total = 0
        while True:
            deleted = self._prune_batch(queue, status, keep, cutoff)
            total += deleted
            if deleted < PRUNE_BATCH:
                return total

    def _prune_batch(self, queue: str, status: str, keep: int | None, cutoff: float | None) -> int:
        """Delete at most a batch of the oldest rows beyond ``keep`` or older than ``cutoff``."""
        scope = "scope = ? AND queue = ? AND status = ?"
        params = (self.prefix, queue, status)
        with self.db.write() as conn:
            doomed: set[int] = set()
            if keep is not None:
                total = conn.execute(f"SELECT count(*) FROM oqron_jobs WHERE {scope}", params).fetchone()[0]
                excess = min(int(total) - keep, PRUNE_BATCH)
                if excess > 0:
                    sql = f"SELECT rowid FROM oqron_jobs WHERE {scope} ORDER BY status_at, rowid LIMIT ?"
                    doomed.update(r for (r,) in conn.execute(sql, (*params, excess)))
            if cutoff is not None and len(doomed) < PRUNE_BATCH:
                sql = (f"SELECT rowid FROM oqron_jobs WHERE {scope} AND status_at < ? "
                       "ORDER BY status_at, rowid LIMIT ?")
                for (rowid,) in conn.execute(sql, (*params, cutoff, PRUNE_BATCH)):
                    if len(doomed) < PRUNE_BATCH:
                        doomed.add(rowid)
            conn.executemany("DELETE FROM oqron_jobs WHERE rowid = ?", [(r,) for r in doomed])
            return len(doomed)

    def put_doc(
        self,
        namespace: str,
        key: str,
        doc: Mapping[str, Any],
        *,
        expect: Mapping[str, Any] | None = None,
        fence: int | None = None,
    ) -> bool:
        payload = dict(doc)
        if fence is not None:
            payload["_fence"] = fence
        with self.db.write() as conn:
            if expect is not None or fence is not None:
                stored = self._doc(conn, namespace, key)
                if expect is not None and (
                    stored is None or any(stored.get(k) != v for k, v in expect.items())
                ):
                    return False
                if fence is not None and stored is not None and (stored.get("_fence") or 0) > fence:
                    return False
            conn.execute("INSERT OR REPLACE INTO oqron_docs VALUES (?, ?, ?, ?)",
                         (self.prefix, namespace, key, codec.dumps(payload)))
            return True

    def _doc(self, conn: sqlite3.Connection, namespace: str, key: str) -> dict[str, Any] | None:
        row = conn.execute(
            "SELECT doc FROM oqron_docs WHERE scope = ? AND namespace = ? AND key = ?",
            (self.prefix, namespace, key),
        ).fetchone()
        return None if row is None else dict(codec.loads(row[0]))

    def get_doc(self, namespace: str, key: str) -> dict[str, Any] | None:
        with self.db.read() as conn:
            return self._doc(conn, namespace, key)

    def delete_doc(self, namespace: str, key: str) -> bool:
        with self.db.write() as conn:
            sql = "DELETE FROM oqron_docs WHERE scope = ? AND namespace = ? AND key = ?"
            return bool(conn.execute(sql, (self.prefix, namespace, key)).rowcount)

    def list_docs(self, namespace: str) -> dict[str, dict[str, Any]]:
        with self.db.read() as conn:
            rows = conn.execute(
                "SELECT key, doc FROM oqron_docs WHERE scope = ? AND namespace = ? ORDER BY key",
                (self.prefix, namespace),
            ).fetchall()
        return {key: codec.loads(text) for key, text in rows}

    def reset_after_fork(self) -> None:
        self.db.reset_after_fork()

    def close(self) -> None:
        self.db.close()


def _filter(prefix: str, queue: str | None, status: str | None) -> tuple[str, tuple[Any, ...]]:
    """The WHERE clause for a (queue, status) selection; each combination has its index."""
    clauses, params = ["scope = ?"], [prefix]
    if queue is not None:
        clauses.append("queue = ?")
        params.append(queue)
    if status is not None:
        clauses.append("status = ?")
        params.append(status)
    return " AND ".join(clauses), tuple(params)


def _chunks(items: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


def _decode(job_id: str, queue: str, status: str, text: str) -> dict[str, Any]:
    """The stored record; if it is not valid JSON, what the columns still say, marked corrupt."""
    try:
        record = codec.loads(text)
        if isinstance(record, dict):
            return record
        problem = f"record is {type(record).__name__}, not an object"
    except ValueError as exc:
        problem = f"record is not valid JSON: {exc}"
    return {"id": job_id, "queue": queue, "status": status, "corrupt": problem}
