"""PostgreSQL broker: queue entries in one table, claimed with ``FOR UPDATE SKIP LOCKED``.

Each step is one statement (``statements``). Lease deadlines and delays use the server clock,
or the ``clock`` given to the constructor (tests that move time by hand), passed as a
parameter. A blocking claim waits on ``LISTEN``: woken by the NOTIFY of a publish, nack or
resume; otherwise only by the due time of a delayed job or, at most every ``SAFETY_NET``
seconds, in case a notification was lost with a connection.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from ...errors import LeaseLost
from ..base import Broker, Lease
from . import statements as st
from .connection import PostgresAdapter
from .listen import Listener, channel_of

#: Longest wait without a notification.
SAFETY_NET = 5.0
#: Most due delayed jobs a claim promotes per queue (the next claim promotes the rest).
PROMOTE_LIMIT = 100


class PostgresBroker(PostgresAdapter, Broker):
    """``clock`` (seconds since the epoch) replaces the server clock, for tests."""

    def __init__(self, url: str, prefix: str, clock: Callable[[], float] | None = None) -> None:
        super().__init__(url, prefix)
        self._clock = clock
        self._local = threading.local()
        self._listeners: list[Listener] = []
        self._guard = threading.Lock()

    def _params(self, queue: str | None = None, **values: Any) -> dict[str, Any]:
        params = {"scope": self.scope, "now": None if self._clock is None else self._clock(), **values}
        if queue is not None:
            params.update(queue=queue, channel=channel_of(self.scope, queue))
        return params

    def publish(
        self,
        queue: str,
        job_ids: Sequence[str],
        *,
        strategy: str | None = None,
        priority: int = 0,
        delay: float = 0.0,
    ) -> None:
        ids = list(dict.fromkeys(job_ids))  # publish order, duplicates dropped
        if not ids:
            return
        params = self._params(queue, ids=ids, strategy=strategy, priority=int(priority),
                              delayed=delay > 0, delay=float(delay))
        self.query(st.PUBLISH, params)

    def claim(
        self, queues: Sequence[str], consumer: str, lease_ttl: float, timeout: float = 0.0
    ) -> Lease | None:
        deadline = time.monotonic() + timeout
        names = list(dict.fromkeys(queues))
        listener = None
        if timeout > 0:  # LISTEN before the first attempt: see ``listen`` for why
            listener = self._listener()
            listener.listen([channel_of(self.scope, queue) for queue in names])
        while True:
            params = self._params(queues=names, consumer=consumer, ttl=float(lease_ttl),
                                  promote=PROMOTE_LIMIT)
            row = self.one(st.CLAIM, params)
            assert row is not None
            queue, job_id, token, next_due = row
            if job_id is not None:
                return Lease(queue, job_id, token, consumer)
            remaining = deadline - time.monotonic()
            if listener is None or remaining <= 0:
                return None
            wait = min(remaining, SAFETY_NET)
            if next_due is not None:
                wait = min(wait, max(0.001, next_due + 0.001))
            listener.wait(wait)

    def _listener(self) -> Listener:
        listener: Listener | None = getattr(self._local, "listener", None)
        if listener is None or listener.pid != os.getpid():
            if listener is not None:
                listener.detach()
            listener = self._local.listener = Listener(self.target.dsn)
            with self._guard:
                self._listeners.append(listener)
        return listener

    def renew(self, leases: Sequence[Lease], lease_ttl: float) -> list[Lease]:
        if not leases:
            return []
        params = self._params(
            queues=[lease.queue for lease in leases],
            ids=[lease.job_id for lease in leases],
            tokens=[lease.token for lease in leases],
            ttl=float(lease_ttl),
        )
        renewed = set(self.query(st.RENEW, params))
        return [lease for lease in leases if (lease.queue, lease.job_id, lease.token) not in renewed]

    def _stale(self, lease: Lease) -> LeaseLost:
        return LeaseLost(f"lease {lease.token} on job {lease.job_id} is no longer current")

    def ack(self, lease: Lease) -> None:
        if not self.query(st.ACK, self._params(lease.queue, job_id=lease.job_id, token=lease.token)):
            raise self._stale(lease)

    def nack(self, lease: Lease, delay: float = 0.0) -> None:
        params = self._params(lease.queue, job_id=lease.job_id, token=lease.token,
                              delayed=delay > 0, delay=float(delay))
        if not self.query(st.NACK, params):
            raise self._stale(lease)

    def release(self, lease: Lease) -> None:
        params = self._params(lease.queue, job_id=lease.job_id, token=lease.token)
        if not self.query(st.RELEASE, params):
            raise self._stale(lease)

    def leases_of(self, consumer: str) -> list[Lease]:
        rows = self.query(
            "SELECT queue, job_id, token FROM oqron_entries "
            "WHERE scope = %s AND consumer = %s AND state = 'leased' ORDER BY queue, job_id",
            (self.scope, consumer),
        )
        return [Lease(queue, job_id, token, consumer) for queue, job_id, token in rows]

    def expired_leases(self, queue: str, limit: int = 1000) -> list[Lease]:
        rows = self.query(st.EXPIRED, self._params(queue, limit=limit))
        return [Lease(queue, job_id, token, consumer) for job_id, token, consumer in rows]

    def remove(self, queue: str, job_id: str) -> bool:
        rows = self.query(
            "DELETE FROM oqron_entries WHERE scope = %s AND queue = %s AND job_id = %s RETURNING 1",
            (self.scope, queue, job_id),
        )
        return bool(rows)

    def pause(self, queue: str) -> None:
        self.query(
            "INSERT INTO oqron_queues (scope, queue, paused) VALUES (%s, %s, true) "
            "ON CONFLICT (scope, queue) DO UPDATE SET paused = true",
            (self.scope, queue),
        )

    def resume(self, queue: str) -> None:
        self.query(st.RESUME, self._params(queue))

    def is_paused(self, queue: str) -> bool:
        row = self.one(
            "SELECT paused FROM oqron_queues WHERE scope = %s AND queue = %s", (self.scope, queue)
        )
        return bool(row and row[0])

    def counts(self, queue: str) -> dict[str, int]:
        row = self.one(
            "SELECT count(*) FILTER (WHERE state = 'ready'), count(*) FILTER (WHERE state = 'delayed'),"
            " count(*) FILTER (WHERE state = 'leased') FROM oqron_entries WHERE scope = %s AND queue = %s",
            (self.scope, queue),
        )
        waiting, delayed, active = row if row else (0, 0, 0)
        return {"waiting": int(waiting), "delayed": int(delayed), "active": int(active)}

    def drain(self, queue: str) -> list[str]:
        return [row[0] for row in self.query(st.DRAIN, self._params(queue))]

    def obliterate(self, queue: str) -> None:
        self.query(st.OBLITERATE, self._params(queue))

    def reset_after_fork(self) -> None:
        super().reset_after_fork()
        with self._guard:
            for listener in self._listeners:
                if listener.pid != os.getpid():
                    listener.detach()
            self._listeners = [lis for lis in self._listeners if lis.pid == os.getpid()]
        self._local = threading.local()

    def close(self) -> None:
        with self._guard:
            for listener in self._listeners:
                if listener.pid == os.getpid():
                    listener.close()
                else:
                    listener.detach()
            self._listeners = []
        self._local = threading.local()
        super().close()
