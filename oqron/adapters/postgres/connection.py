"""One autocommit connection per URL per process, opened lazily, migrated on first use.

Storage, broker and lock on the same URL share that connection (a child then costs the server
two backends: this one and the broker's LISTEN connection, not four). Every statement oqron
sends is a whole transaction by itself, so sharing needs no coordination beyond psycopg2's own
per-connection lock.

Fork hygiene: a child must never talk over its parent's socket, and must not even close it —
libpq's goodbye message would end the parent's session (psycopg2 skips it when a connection is
garbage-collected in another process, but not on an explicit ``close()``). Inherited connections
are therefore *detached* right after every fork (an ``os.register_at_fork`` hook;
``reset_after_fork`` and a pid check do the same for forks that bypass it): their socket
descriptor is pointed at /dev/null, so nothing the child does with the object can reach the
parent's session.

Errors: connection failures surface as ``AdapterUnavailable`` (the broken connection is dropped
and the next call reconnects); values PostgreSQL refuses (``\\u0000`` in JSON, ...) as
``ValueError``; deadlocks and serialization failures are retried, since every statement is a
whole transaction that was rolled back. A connection the server closed while it sat idle (a
restart) is noticed before use and replaced, so the first statement after a restart succeeds.
"""

from __future__ import annotations

import os
import re
import select
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import psycopg2
import psycopg2.errors

from ...errors import AdapterError, AdapterUnavailable
from .schema import migrate

#: psycopg2 ships no type information: its connection objects are used untyped.
Connection = Any
Row = tuple[Any, ...]

#: A schema name in the URL becomes an identifier: only plain lower-case names are accepted.
SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
#: Connection options oqron sets unless the URL sets them.
DEFAULTS = {
    "application_name": "oqron",
    "connect_timeout": "5",
    "keepalives": "1",
    "keepalives_idle": "10",
    "keepalives_interval": "5",
    "keepalives_count": "3",
}
RETRIES = 3

_guard = threading.RLock()
_pid = os.getpid()
_shared: dict[str, Connection] = {}  # dsn -> this process's connection
_users: dict[str, set[int]] = {}  # dsn -> ids of the adapters using it
_migrated: set[str] = set()  # dsn whose schema is known to be current
_in_flight: dict[str, int] = {}  # dsn -> statements running on this process's connection


class Target(NamedTuple):
    """Where to connect: the libpq DSN and the schema oqron's tables live in (None: default)."""

    dsn: str
    schema: str | None


def parse_url(url: str) -> Target:
    """``postgres://`` or ``postgresql://`` URL → target: oqron's own ``schema=`` option becomes
    the connection's search path, and the defaults above are filled in."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql"):
        raise ValueError(f"not a PostgreSQL URL: {url!r}")
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    schema = query.pop("schema", None)
    if schema is not None:
        if not SCHEMA_NAME.fullmatch(schema):
            raise ValueError(f"schema: expected a lower-case SQL name, got {schema!r}")
        query["options"] = f"{query.get('options', '')} -c search_path={schema}".strip()
    for key, value in DEFAULTS.items():
        query.setdefault(key, value)
    dsn = urlunsplit(("postgresql", parts.netloc, parts.path, urlencode(query, quote_via=quote), ""))
    return Target(dsn, schema)


def message(exc: BaseException) -> str:
    """One line: the server's own message and detail when it sent one (not the statement or
    the data it quotes), else libpq's multi-line text folded."""
    diag = getattr(exc, "diag", None)
    primary = getattr(diag, "message_primary", None)
    if primary:
        detail = getattr(diag, "message_detail", None)
        return f"postgresql: {primary}" + (f" ({detail})" if detail else "")
    return "postgresql: " + " ".join(str(exc).split())


def connect(dsn: str, **options: str) -> Connection:
    """A new autocommit connection; ``AdapterUnavailable`` when the server cannot be reached."""
    try:
        conn = psycopg2.connect(dsn, **options)
    except psycopg2.Error as exc:
        raise AdapterUnavailable(message(exc)) from exc
    conn.autocommit = True
    return conn


def detach(conn: Connection) -> None:
    """Make a connection inherited from the parent harmless (see the module docstring)."""
    if conn.closed:
        return
    fd = conn.fileno()
    devnull = os.open(os.devnull, os.O_RDWR)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)


def forget_inherited() -> None:
    """After a fork: detach every connection the parent opened; the next call opens new ones."""
    global _pid, _guard
    if _pid == os.getpid():
        return
    _guard = threading.RLock()  # another thread of the parent may have held it during the fork
    for conn in _shared.values():
        detach(conn)
    _shared.clear()
    _users.clear()
    _in_flight.clear()
    _pid = os.getpid()


os.register_at_fork(after_in_child=forget_inherited)


@contextmanager
def shared(target: Target, user: int) -> Iterator[Connection]:
    """This process's connection to ``target``, opened (and the schema migrated) on first use,
    for the statement(s) run inside the ``with`` block."""
    forget_inherited()
    with _guard:
        _users.setdefault(target.dsn, set()).add(user)
        conn = _shared.get(target.dsn)
        if conn is not None and not conn.closed and not _in_flight.get(target.dsn) and hung_up(conn):
            discard(target.dsn, conn)
            conn = None
        if conn is None or conn.closed:
            conn = connect(target.dsn)
            if target.dsn not in _migrated:
                _run_migrations(conn, target)
            _shared[target.dsn] = conn
        _in_flight[target.dsn] = _in_flight.get(target.dsn, 0) + 1
    try:
        yield conn
    finally:
        with _guard:
            _in_flight[target.dsn] -= 1


def hung_up(conn: Connection) -> bool:
    """Whether the server ended this idle connection (a restart, a terminated backend).

    libpq does not notice the end of an idle connection until a statement fails on it, so a
    readable socket is peeked at. An idle session receives nothing but notifications (``A``)
    unless the server is ending it, which it announces with a notice or an error before it
    closes; rarer unsolicited messages (a setting that changed) are no reason to keep the
    connection either. This costs one non-blocking ``poll`` per statement and no round trip.
    """
    fd = conn.fileno()
    waiter = select.poll()
    waiter.register(fd, select.POLLIN)
    if not waiter.poll(0):
        return False
    with socket.socket(fileno=os.dup(fd)) as sock:
        try:
            head = sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except BlockingIOError:
            return False
        except OSError:
            return True
    return head != b"A"


def _run_migrations(conn: Connection, target: Target) -> None:
    try:
        migrate(conn, target.schema)
    except psycopg2.Error as exc:
        conn.close()
        raise AdapterUnavailable("schema migration failed: " + message(exc)) from exc
    _migrated.add(target.dsn)


def discard(dsn: str, conn: Connection) -> None:
    """Close a broken connection so that the next call reconnects."""
    with _guard:
        if _shared.get(dsn) is conn:
            del _shared[dsn]
    if not conn.closed:
        conn.close()


def release(dsn: str, user: int) -> None:
    """An adapter is done with ``dsn``; the connection closes when its last user leaves."""
    with _guard:
        if _pid != os.getpid():
            return
        users = _users.get(dsn, set())
        users.discard(user)
        if not users:
            _users.pop(dsn, None)
            conn = _shared.pop(dsn, None)
            if conn is not None and not conn.closed:
                conn.close()


class PostgresAdapter:
    """Shared plumbing: the scope (the isolation prefix, stored in every row) and queries."""

    def __init__(self, url: str, prefix: str) -> None:
        self.url = url
        self.prefix = prefix
        self.scope = prefix
        self.target = parse_url(url)

    def query(self, sql: Any, params: Any = None) -> list[Row]:
        """Run one statement (its own transaction) and return its rows ([] when it has none)."""
        for attempt in range(RETRIES):
            with shared(self.target, id(self)) as conn:
                try:
                    with conn.cursor() as cur:
                        cur.execute(sql, params)
                        return cur.fetchall() if cur.description is not None else []
                except psycopg2.errors.TransactionRollbackError as exc:
                    if attempt == RETRIES - 1:
                        raise AdapterError(message(exc)) from exc
                except (psycopg2.OperationalError, psycopg2.InterfaceError) as exc:
                    discard(self.target.dsn, conn)
                    raise AdapterUnavailable(message(exc)) from exc
                except psycopg2.DataError as exc:
                    raise ValueError("value refused by " + message(exc)) from exc
        raise AssertionError("unreachable")

    def one(self, sql: Any, params: Any = None) -> Row | None:
        rows = self.query(sql, params)
        return rows[0] if rows else None

    def reset_after_fork(self) -> None:
        forget_inherited()

    def close(self) -> None:
        release(self.target.dsn, id(self))
