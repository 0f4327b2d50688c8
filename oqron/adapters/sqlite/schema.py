"""The tables of the three SQLite adapters, created and versioned by oqron.

Every row carries ``scope`` (the isolation prefix) as the first column of its key and of every
index, so two prefixes in one file never see each other's rows and no query scans another
prefix. Storage, broker and lock may share one file or use separate ones; each creates the whole
schema, which is cheap and idempotent.

``oqron_schema`` holds the version; a file written by a newer oqron is refused rather than
misread.
"""

from __future__ import annotations

import sqlite3

from ...errors import AdapterError

VERSION = 1

TABLES = (
    # Storage: the record as JSON, with the columns that listing, counting and pruning need.
    # ``status_at`` is when the job entered its status, ``created_at`` when it was stored; ties
    # are broken by rowid (insertion order).
    """CREATE TABLE IF NOT EXISTS oqron_jobs (
        scope TEXT NOT NULL, id TEXT NOT NULL, queue TEXT NOT NULL, status TEXT NOT NULL,
        status_at REAL NOT NULL, created_at REAL NOT NULL, record TEXT NOT NULL,
        UNIQUE (scope, id))""",
    "CREATE INDEX IF NOT EXISTS oqron_jobs_queue_status ON oqron_jobs (scope, queue, status, status_at)",
    "CREATE INDEX IF NOT EXISTS oqron_jobs_status ON oqron_jobs (scope, status, status_at)",
    "CREATE INDEX IF NOT EXISTS oqron_jobs_queue ON oqron_jobs (scope, queue, created_at)",
    "CREATE INDEX IF NOT EXISTS oqron_jobs_created ON oqron_jobs (scope, created_at)",
    # Every queue that has ever had a record (kept when its jobs are deleted).
    """CREATE TABLE IF NOT EXISTS oqron_job_queues (
        scope TEXT NOT NULL, queue TEXT NOT NULL, PRIMARY KEY (scope, queue)) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS oqron_docs (
        scope TEXT NOT NULL, namespace TEXT NOT NULL, key TEXT NOT NULL, doc TEXT NOT NULL,
        PRIMARY KEY (scope, namespace, key)) WITHOUT ROWID""",
    # Broker: per queue the remembered strategy, the entry counter (seq) and the pause flag.
    """CREATE TABLE IF NOT EXISTS oqron_queues (
        scope TEXT NOT NULL, queue TEXT NOT NULL, strategy TEXT NOT NULL DEFAULT 'fifo',
        seq INTEGER NOT NULL DEFAULT 0, paused INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (scope, queue)) WITHOUT ROWID""",
    # One row per job the broker holds. ``score`` depends on ``state``: the entry score when
    # ready, the due time when delayed, the lease deadline when leased.
    """CREATE TABLE IF NOT EXISTS oqron_entries (
        scope TEXT NOT NULL, queue TEXT NOT NULL, job_id TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('ready', 'delayed', 'leased')),
        score REAL NOT NULL, priority INTEGER NOT NULL DEFAULT 0,
        token TEXT, consumer TEXT,
        PRIMARY KEY (scope, queue, job_id)) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS oqron_entries_order ON oqron_entries (scope, queue, state, score)",
    """CREATE INDEX IF NOT EXISTS oqron_entries_consumer ON oqron_entries (scope, consumer)
        WHERE consumer IS NOT NULL""",
    # Lease tokens come from a per-scope counter that outlives queues (obliterate included),
    # so a token is never handed out twice.
    """CREATE TABLE IF NOT EXISTS oqron_counters (
        scope TEXT NOT NULL, name TEXT NOT NULL, value INTEGER NOT NULL,
        PRIMARY KEY (scope, name)) WITHOUT ROWID""",
    # Lock: the row outlives a release so that the epoch keeps rising.
    """CREATE TABLE IF NOT EXISTS oqron_locks (
        scope TEXT NOT NULL, key TEXT NOT NULL, owner TEXT, expires_at REAL NOT NULL,
        epoch INTEGER NOT NULL, PRIMARY KEY (scope, key)) WITHOUT ROWID""",
    "CREATE TABLE IF NOT EXISTS oqron_schema (version INTEGER NOT NULL)",
)


def ensure_schema(conn: sqlite3.Connection) -> None:
    """Create the tables if missing (in one write transaction, so racing processes agree)."""
    if _version(conn) == VERSION:
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = _version(conn)
        if version is None:
            for statement in TABLES:
                conn.execute(statement)
            conn.execute("INSERT INTO oqron_schema (version) VALUES (?)", (VERSION,))
        elif version > VERSION:
            raise AdapterError(
                f"sqlite schema version {version} was written by a newer oqron (this one knows {VERSION})"
            )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _version(conn: sqlite3.Connection) -> int | None:
    exists = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'oqron_schema'"
    ).fetchone()
    if exists is None:
        return None
    row = conn.execute("SELECT max(version) FROM oqron_schema").fetchone()
    return None if row[0] is None else int(row[0])
