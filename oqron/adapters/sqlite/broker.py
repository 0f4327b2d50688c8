"""SQLite broker: one ``oqron_entries`` row per job the broker holds (ready, delayed or leased),
one ``oqron_queues`` row per queue (strategy, entry counter, pause flag).

Every state change is one ``BEGIN IMMEDIATE`` transaction, so a claim (promotion of due delayed
jobs included), a finish or a renewal is atomic across processes. Ready rows are ordered by
``entry_score``; a blocking claim sleeps on a doorbell (see ``wakeup``) and is rung by every
publish, nack and resume of its prefix.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from ...errors import AdapterError, LeaseLost
from ..base import Broker, Lease, entry_score
from . import entries as q
from .connection import Database
from .entries import IN_QUEUE, KEY
from .wakeup import Doorbells

#: Longest sleep of a blocked claim without a ring: a safety net for a ringer that died
#: between its commit and its ring. Not a poll: a healthy system always rings.
SAFETY_WAIT = 2.0


class SqliteBroker(Broker):
    """``clock`` (seconds) replaces ``time.time``, for tests that move time by hand."""

    blocking = True

    def __init__(self, url: str, prefix: str, clock: Callable[[], float] | None = None) -> None:
        self.prefix = prefix
        self.db = Database(url)
        self.bells = Doorbells(self.db.sidecar, prefix)
        self._clock = clock or time.time

    def publish(
        self,
        queue: str,
        job_ids: Sequence[str],
        *,
        strategy: str | None = None,
        priority: int = 0,
        delay: float = 0.0,
    ) -> None:
        ids = list(dict.fromkeys(job_ids))
        if not ids:
            return
        with self.db.write() as conn:
            remembered, seq = q.upsert_queue(conn, self.prefix, queue, strategy)
            if delay > 0:
                due = self._clock() + delay
                rows = [(job_id, "delayed", due) for job_id in ids]
            else:
                scores = (entry_score(remembered, seq + n, priority) for n in range(1, len(ids) + 1))
                rows = [(job_id, "ready", score) for job_id, score in zip(ids, scores, strict=True)]
                q.set_seq(conn, self.prefix, queue, seq + len(ids))
            published = conn.executemany(
                "INSERT OR IGNORE INTO oqron_entries (scope, queue, job_id, state, score, priority) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [(self.prefix, queue, job_id, state, score, priority) for job_id, state, score in rows],
            ).rowcount
        if published:
            self.bells.ring()

    def claim(
        self, queues: Sequence[str], consumer: str, lease_ttl: float, timeout: float = 0.0
    ) -> Lease | None:
        queues = list(queues)
        lease, _ = self._claim_now(queues, consumer, lease_ttl)
        if lease is not None or timeout <= 0:
            return lease
        deadline = time.monotonic() + timeout
        try:
            bell = self.bells.listen()  # before the next look, so no ring after it is missed
        except OSError as exc:
            raise AdapterError(f"sqlite {self.db.path}: cannot wait for jobs: {exc}") from exc
        try:
            self.db.checkpoint()  # idle now: a good moment for the WAL's housekeeping
            while True:
                claimable, next_due = self._probe(queues)
                if claimable:
                    lease, next_due = self._claim_now(queues, consumer, lease_ttl)
                    if lease is not None:
                        return lease
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                wait = min(remaining, SAFETY_WAIT)
                if next_due is not None:
                    wait = min(wait, max(0.0, next_due - self._clock()) + 0.001)
                bell.wait(wait)
        finally:
            bell.close()

    def _probe(self, queues: Sequence[str]) -> tuple[bool, float | None]:
        """Read-only: is anything claimable now, else when is the next delayed job due? Woken
        waiters look here first, so a ring that brings nothing for them takes no write lock."""
        now, next_due = self._clock(), None
        with self.db.read() as conn:
            for queue in queues:
                ready, due, paused = q.probe(conn, self.prefix, queue)
                if paused:
                    continue
                if ready or (due is not None and due <= now):
                    return True, None
                next_due = _earliest(next_due, due)
        return False, next_due

    def _claim_now(
        self, queues: Sequence[str], consumer: str, lease_ttl: float
    ) -> tuple[Lease | None, float | None]:
        """One claim attempt: the lease, or None and when the next delayed job is due."""
        now, next_due = self._clock(), None
        with self.db.write() as conn:
            for queue in queues:
                ready, due, paused = q.probe(conn, self.prefix, queue)
                if paused:
                    continue
                if due is not None and due <= now:
                    ready = q.promote_due(conn, self.prefix, queue, now) or ready
                elif due is not None:
                    next_due = _earliest(next_due, due)
                job_id = q.first_ready(conn, self.prefix, queue) if ready else None
                if job_id is not None:
                    token = q.new_token(conn, self.prefix)
                    conn.execute(
                        f"UPDATE oqron_entries SET state = 'leased', score = ?, token = ?, consumer = ? "
                        f"WHERE {KEY}",
                        (now + lease_ttl, token, consumer, self.prefix, queue, job_id),
                    )
                    return Lease(queue, job_id, token, consumer), None
        return None, next_due

    def renew(self, leases: Sequence[Lease], lease_ttl: float) -> list[Lease]:
        if not leases:
            return []
        lost = []
        with self.db.write() as conn:
            deadline = self._clock() + lease_ttl
            for lease in leases:
                if not conn.execute(
                    f"UPDATE oqron_entries SET score = ? WHERE {KEY} AND state = 'leased' AND token = ?",
                    (deadline, self.prefix, lease.queue, lease.job_id, lease.token),
                ).rowcount:
                    lost.append(lease)
        return lost

    def ack(self, lease: Lease) -> None:
        with self.db.write() as conn:
            if not conn.execute(
                f"DELETE FROM oqron_entries WHERE {KEY} AND state = 'leased' AND token = ?",
                (self.prefix, lease.queue, lease.job_id, lease.token),
            ).rowcount:
                raise _lost(lease)

    def nack(self, lease: Lease, delay: float = 0.0) -> None:
        self._give_back(lease, delay, at_head=False)

    def release(self, lease: Lease) -> None:
        self._give_back(lease, 0.0, at_head=True)

    def _give_back(self, lease: Lease, delay: float, at_head: bool) -> None:
        with self.db.write() as conn:
            held = conn.execute(
                f"SELECT priority FROM oqron_entries WHERE {KEY} AND state = 'leased' AND token = ?",
                (self.prefix, lease.queue, lease.job_id, lease.token),
            ).fetchone()
            if held is None:
                raise _lost(lease)
            if delay > 0:
                state, score = "delayed", self._clock() + delay
            elif at_head:
                state, score = "ready", q.head_score(conn, self.prefix, lease.queue, held[0])
            else:
                state, score = "ready", q.ready_score(conn, self.prefix, lease.queue, held[0])
            conn.execute(
                f"UPDATE oqron_entries SET state = ?, score = ?, token = NULL, consumer = NULL WHERE {KEY}",
                (state, score, self.prefix, lease.queue, lease.job_id),
            )
        self.bells.ring()

    def leases_of(self, consumer: str) -> list[Lease]:
        # INDEXED BY: without ANALYZE statistics the planner would walk the whole prefix.
        with self.db.read() as conn:
            rows = conn.execute(
                "SELECT queue, job_id, token FROM oqron_entries INDEXED BY oqron_entries_consumer "
                "WHERE scope = ? AND consumer = ? AND state = 'leased' ORDER BY queue, job_id",
                (self.prefix, consumer),
            ).fetchall()
        return [Lease(queue, job_id, token, consumer) for queue, job_id, token in rows]

    def expired_leases(self, queue: str, limit: int = 1000) -> list[Lease]:
        with self.db.read() as conn:
            rows = conn.execute(
                f"SELECT job_id, token, consumer FROM oqron_entries WHERE {IN_QUEUE} "
                "AND state = 'leased' AND score <= ? ORDER BY score, job_id LIMIT ?",
                (self.prefix, queue, self._clock(), limit),
            ).fetchall()
        return [Lease(queue, job_id, token, consumer) for job_id, token, consumer in rows]

    def remove(self, queue: str, job_id: str) -> bool:
        with self.db.write() as conn:
            deleted = conn.execute(f"DELETE FROM oqron_entries WHERE {KEY}", (self.prefix, queue, job_id))
            return bool(deleted.rowcount)

    def pause(self, queue: str) -> None:
        with self.db.write() as conn:
            conn.execute(
                "INSERT INTO oqron_queues (scope, queue, paused) VALUES (?, ?, 1) "
                "ON CONFLICT (scope, queue) DO UPDATE SET paused = 1",
                (self.prefix, queue),
            )

    def resume(self, queue: str) -> None:
        with self.db.write() as conn:
            conn.execute(f"UPDATE oqron_queues SET paused = 0 WHERE {IN_QUEUE}", (self.prefix, queue))
        self.bells.ring()

    def is_paused(self, queue: str) -> bool:
        with self.db.read() as conn:
            state = q.queue_state(conn, self.prefix, queue)
        return state is not None and state[2]

    def counts(self, queue: str) -> dict[str, int]:
        with self.db.read() as conn:
            rows = conn.execute(
                f"SELECT state, count(*) FROM oqron_entries WHERE {IN_QUEUE} GROUP BY state",
                (self.prefix, queue),
            ).fetchall()
        found = dict(rows)
        return {"waiting": found.get("ready", 0), "delayed": found.get("delayed", 0),
                "active": found.get("leased", 0)}

    def drain(self, queue: str) -> list[str]:
        with self.db.write() as conn:
            ids = [
                row[0]
                for state in ("ready", "delayed")
                for row in conn.execute(
                    f"SELECT job_id FROM oqron_entries WHERE {IN_QUEUE} AND state = ? ORDER BY score, job_id",
                    (self.prefix, queue, state),
                )
            ]
            conn.execute(
                f"DELETE FROM oqron_entries WHERE {IN_QUEUE} AND state IN ('ready', 'delayed')",
                (self.prefix, queue),
            )
        return ids

    def obliterate(self, queue: str) -> None:
        with self.db.write() as conn:
            for table in ("oqron_entries", "oqron_queues"):
                conn.execute(f"DELETE FROM {table} WHERE {IN_QUEUE}", (self.prefix, queue))

    def reset_after_fork(self) -> None:
        self.db.reset_after_fork()
        self.bells.close()

    def close(self) -> None:
        self.db.close()
        self.bells.close()


def _lost(lease: Lease) -> LeaseLost:
    return LeaseLost(f"lease {lease.token} on job {lease.job_id} is no longer current")


def _earliest(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else min(a, b)
