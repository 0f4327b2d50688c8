"""Waking blocked claimers across processes with ``LISTEN``/``NOTIFY``.

Every statement that makes a job claimable (publish, nack, resume) ends with
``pg_notify(channel_of(scope, queue), '')``; PostgreSQL delivers it when that transaction
commits. A claimer that finds nothing waits in ``poll()`` on a connection that LISTENs on its
queues' channels: no polling, and the wake-up arrives as soon as the job is visible.

The order that makes this race-free: LISTEN first, then try to claim, then wait. A publish that
commits after the LISTEN is delivered even if it lands between the claim and the ``poll()``;
one that committed before it is seen by the claim itself.

A listener belongs to one thread of one process (a connection's notification queue cannot be
shared between two waiters without one of them missing a wake-up).
"""

from __future__ import annotations

import hashlib
import os
import select
import weakref

import psycopg2
from psycopg2 import sql

from ...errors import AdapterUnavailable
from .connection import Connection, connect, detach, hung_up, message


def channel_of(scope: str, queue: str) -> str:
    """The NOTIFY channel of a queue: a fixed-size hex name, so any scope or queue name is safe
    as an identifier and fits the 63-byte limit."""
    digest = hashlib.blake2b(f"{scope}\n{queue}".encode(), digest_size=16).hexdigest()
    return f"oqron_{digest}"


class Listener:
    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.pid = os.getpid()
        self._conn: Connection | None = None
        self._channels: set[str] = set()
        _listeners.add(self)

    def _connection(self) -> Connection:
        if self._conn is None or self._conn.closed:
            self._conn = connect(self.dsn, application_name="oqron-listen")
            self._channels = set()
        return self._conn

    def listen(self, channels: list[str]) -> None:
        """Subscribe to the channels not subscribed yet (a child's queues rarely change)."""
        if self._conn is not None and not self._conn.closed and hung_up(self._conn):
            self.close()  # the server restarted since the last wait: subscribe again below
        missing = [c for c in channels if c not in self._channels]
        if not missing:
            return
        conn = self._connection()
        try:
            with conn.cursor() as cur:
                for channel in missing:
                    cur.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
        except psycopg2.Error as exc:
            self.close()
            raise AdapterUnavailable(message(exc)) from exc
        self._channels.update(missing)

    def wait(self, timeout: float) -> bool:
        """Block until a notification arrives or ``timeout`` passes; True if woken. Pending
        notifications are consumed: each one wakes a single wait."""
        conn = self._connection()
        try:
            if not conn.notifies:
                waiter = select.poll()  # not select(): it fails on descriptors above 1023
                waiter.register(conn.fileno(), select.POLLIN)
                if waiter.poll(max(0, int(timeout * 1000) + 1)) and hung_up(conn):
                    # libpq would not notice, and every later poll would return at once
                    raise psycopg2.OperationalError("the server closed the LISTEN connection")
                conn.poll()
            woken = bool(conn.notifies)
            conn.notifies.clear()
        except psycopg2.Error as exc:
            self.close()
            raise AdapterUnavailable(message(exc)) from exc
        return woken

    def detach(self) -> None:
        """Forget a listener inherited from the parent process without disturbing it."""
        if self._conn is not None:
            detach(self._conn)
        self._conn = None
        self._channels = set()

    def close(self) -> None:
        """Close the connection (after an error too): the next ``listen`` subscribes anew."""
        if self._conn is not None and not self._conn.closed:
            self._conn.close()
        self._conn = None
        self._channels = set()


_listeners: weakref.WeakSet[Listener] = weakref.WeakSet()


def _detach_inherited() -> None:
    for listener in list(_listeners):
        if listener.pid != os.getpid():
            listener.detach()


os.register_at_fork(after_in_child=_detach_inherited)
