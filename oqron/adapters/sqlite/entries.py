"""The SQL steps of the broker on one queue, each run inside the caller's transaction.

``oqron_queues`` holds per queue the remembered strategy, ``seq`` (raised every time a job
becomes ready, the input of ``entry_score``) and the pause flag. ``oqron_entries`` holds one row
per job the broker knows; its ``score`` is the entry score when ready, the due time when
delayed and the lease deadline when leased, so one index orders all three.
"""

from __future__ import annotations

import sqlite3

from ..base import entry_score

#: Delayed jobs promoted per queue in one claim.
PROMOTE_LIMIT = 1000

KEY = "scope = ? AND queue = ? AND job_id = ?"
IN_QUEUE = "scope = ? AND queue = ?"


def upsert_queue(conn: sqlite3.Connection, scope: str, queue: str, strategy: str | None) -> tuple[str, int]:
    """Create the queue row if missing, remember ``strategy`` unless None; (strategy, seq)."""
    row = conn.execute(
        "INSERT INTO oqron_queues (scope, queue, strategy) VALUES (?1, ?2, coalesce(?3, 'fifo')) "
        "ON CONFLICT (scope, queue) DO UPDATE SET strategy = coalesce(?3, strategy) "
        "RETURNING strategy, seq",
        (scope, queue, strategy),
    ).fetchone()
    return str(row[0]), int(row[1])


def queue_state(conn: sqlite3.Connection, scope: str, queue: str) -> tuple[str, int, bool] | None:
    """(strategy, seq, paused), or None for a queue never published to nor paused."""
    row = conn.execute(
        f"SELECT strategy, seq, paused FROM oqron_queues WHERE {IN_QUEUE}", (scope, queue)
    ).fetchone()
    return None if row is None else (str(row[0]), int(row[1]), bool(row[2]))


def set_seq(conn: sqlite3.Connection, scope: str, queue: str, seq: int) -> None:
    conn.execute(f"UPDATE oqron_queues SET seq = ? WHERE {IN_QUEUE}", (seq, scope, queue))


def ready_score(conn: sqlite3.Connection, scope: str, queue: str, priority: int) -> float:
    """Take the next entry number of the queue and return the score of a job entering now."""
    strategy, seq = conn.execute(
        "INSERT INTO oqron_queues (scope, queue, seq) VALUES (?, ?, 1) "
        "ON CONFLICT (scope, queue) DO UPDATE SET seq = seq + 1 RETURNING strategy, seq",
        (scope, queue),
    ).fetchone()
    return entry_score(strategy, seq, priority)


def head_score(conn: sqlite3.Connection, scope: str, queue: str, priority: int) -> float:
    """The score of a job handed back to the head of its queue (see ``Broker.release``)."""
    strategy = (queue_state(conn, scope, queue) or ("fifo", 0, False))[0]
    same = " AND priority = ?" if strategy == "priority" else ""
    head = conn.execute(
        f"SELECT min(score) FROM oqron_entries WHERE {IN_QUEUE} AND state = 'ready'{same}",
        (scope, queue, priority) if same else (scope, queue),
    ).fetchone()[0]
    return float(head) - 1 if head is not None else ready_score(conn, scope, queue, priority)


def promote_due(conn: sqlite3.Connection, scope: str, queue: str, now: float) -> bool:
    """Make due delayed jobs ready, in due order, each with a new entry number; True if any."""
    due = conn.execute(
        f"SELECT job_id, priority FROM oqron_entries WHERE {IN_QUEUE} AND state = 'delayed' "
        "AND score <= ? ORDER BY score, job_id LIMIT ?",
        (scope, queue, now, PROMOTE_LIMIT),
    ).fetchall()
    if not due:
        return False
    strategy, seq, _ = queue_state(conn, scope, queue) or ("fifo", 0, False)
    rows = [
        (entry_score(strategy, seq + n, priority), scope, queue, job_id)
        for n, (job_id, priority) in enumerate(due, start=1)
    ]
    conn.executemany(f"UPDATE oqron_entries SET state = 'ready', score = ? WHERE {KEY}", rows)
    set_seq(conn, scope, queue, seq + len(due))
    return True


def first_ready(conn: sqlite3.Connection, scope: str, queue: str) -> str | None:
    row = conn.execute(
        f"SELECT job_id FROM oqron_entries WHERE {IN_QUEUE} AND state = 'ready' ORDER BY score LIMIT 1",
        (scope, queue),
    ).fetchone()
    return None if row is None else str(row[0])


def next_due(conn: sqlite3.Connection, scope: str, queue: str) -> float | None:
    row = conn.execute(
        f"SELECT min(score) FROM oqron_entries WHERE {IN_QUEUE} AND state = 'delayed'", (scope, queue)
    ).fetchone()
    return None if row[0] is None else float(row[0])


def probe(conn: sqlite3.Connection, scope: str, queue: str) -> tuple[bool, float | None, bool]:
    """Read-only, one statement: (has a ready job, next due time, paused)."""
    ready, due, paused = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM oqron_entries WHERE scope = ?1 AND queue = ?2 AND state = 'ready'), "
        "(SELECT min(score) FROM oqron_entries WHERE scope = ?1 AND queue = ?2 AND state = 'delayed'), "
        "coalesce((SELECT paused FROM oqron_queues WHERE scope = ?1 AND queue = ?2), 0)",
        (scope, queue),
    ).fetchone()
    return bool(ready), (None if due is None else float(due)), bool(paused)


def new_token(conn: sqlite3.Connection, scope: str) -> str:
    """A lease token never handed out before under this prefix."""
    row = conn.execute(
        "INSERT INTO oqron_counters VALUES (?, 'lease', 1) "
        "ON CONFLICT (scope, name) DO UPDATE SET value = value + 1 RETURNING value",
        (scope,),
    ).fetchone()
    return str(row[0])
