"""Function calls packed by hand for the job hot path.

redis-py encodes every argument of every command through several layers of Python; a take
or finish carries thirty-odd arguments, most of them the same on every call (key names,
consumer id, project). Packing them once into RESP bytes and sending the bytes over the
client's own connection removes about a fifth of a child's CPU per job.

The hot-path scripts are loaded as one Redis function library (Redis 7), not run with
EVALSHA: a script runs its whole text on every call, so the thirty-odd shared Lua functions
pasted into it were created anew each time (measured: a third of a finish's server time); a
library defines them once, when it is loaded.
"""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import redis

from .connection import INCLUDE, forks
from .replypoll import poll_reply

Client = Any
NEEDS_REDIS_7 = "oqron's Redis job path needs Redis 7.0 or newer (functions); the server says: "
#: One call: (number of keys, number of keys + arguments, the packed keys and arguments).
Call = tuple[int, int, bytes]


def bulk(value: str | int | bytes) -> bytes:
    """One RESP bulk string."""
    return pack((value,))


def pack(values: Iterable[str | int | bytes]) -> bytes:
    """Bulk strings one after the other."""
    return b"".join([b"$%d\r\n%s\r\n" % (len(data), data) for data in map(_as_bytes, values)])


def _as_bytes(value: str | int | bytes) -> bytes:
    if value.__class__ is bytes:  # the exact type first: a fifth faster than isinstance
        return value
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, bytes):
        return bytes(value)
    return str(value).encode()


_names: dict[str | bytes, bytes] = {}  # field names, packed: a record has a few dozen


def pack_fields(flat: Sequence[str | bytes]) -> bytes:
    """Field/value pairs packed, the names from a cache: a finish packs half a dozen for every
    job, and an add its own four."""
    parts = []
    for at in range(0, len(flat), 2):
        name = flat[at]
        packed_name = _names.get(name)
        if packed_name is None:
            packed_name = bulk(name)
            if len(_names) < 256:
                _names[name] = packed_name
        data = _as_bytes(flat[at + 1])
        parts.append(b"%s$%d\r\n%s\r\n" % (packed_name, len(data), data))
    return b"".join(parts)


class FunctionLibrary:
    """Scripts (files in ``scripts/``, each the body of a function of KEYS and ARGV) gathered
    into one library with the shared files they include. Its name and its functions' names
    carry a hash of its code, so servers shared by two versions of oqron hold both."""

    def __init__(self, names: Sequence[str], text_of: Callable[[str], str]) -> None:
        shared: list[str] = []
        bodies = []
        for name in names:
            for include in INCLUDE.findall(text_of(name)):
                if include not in shared:
                    shared.append(include)
            bodies.append((name, INCLUDE.sub("", text_of(name))))
        sources = [text_of(include) for include in shared] + [body for _, body in bodies]
        self.name = "oqron_" + hashlib.sha1("\n".join(sources).encode()).hexdigest()[:12]
        registered = [f"redis.register_function('{self.name}_{name}', function(KEYS, ARGV)\n{body}\nend)"
                      for name, body in bodies]
        self.code = "\n".join([f"#!lua name={self.name}", *sources[:len(shared)], *registered])
        self.functions = {name: PackedScript(self, f"{self.name}_{name}") for name in names}

    def load(self, client: Client) -> None:
        """Load (or reload: the same name is the same code) onto ``client``'s server."""
        try:
            client.function_load(self.code, replace=True)
        except redis.ResponseError as exc:
            if "unknown command" in str(exc).lower():
                raise redis.ResponseError(NEEDS_REDIS_7 + str(exc)) from exc
            raise


class PackedScript:
    """One function of a library, called with pre-packed keys and arguments."""

    def __init__(self, library: FunctionLibrary, name: str) -> None:
        self.library = library
        self._head = b"$5\r\nFCALL\r\n" + bulk(name)

    def command(self, numkeys: int, items: int, body: bytes) -> bytes:
        return b"*%d\r\n%s%s%s" % (items + 3, self._head, bulk(numkeys), body)

    def load(self, client: Client) -> None:
        self.library.load(client)

    def __call__(self, client: Client, numkeys: int, items: int, body: bytes, *, poll: float = 0.0) -> Any:
        """One call over the calling thread's own connection to ``client``'s server; ``poll``:
        seconds to poll for the reply before sleeping on it (``replypoll``)."""
        return self.call(client, thread_connection(client), self.command(numkeys, items, body), poll)

    def pipeline(self, client: Client, calls: Iterable[Call], *, poll: float = 0.0) -> list[Any]:
        """Calls sent as they are produced and their replies read after: the server runs one
        while the client packs the next (``calls`` may be a generator that packs lazily). The
        first call goes alone, so that a missing library is loaded before the rest are sent."""
        pending = iter(calls)
        first = next(pending, None)
        if first is None:
            return []
        replies = [self(client, *first, poll=poll)]
        connection = thread_connection(client)
        sent = 0
        for call in pending:
            send_packed(connection, self.command(*call))
            sent += 1
        failure: Exception | None = None
        for _ in range(sent):
            try:
                replies.append(read_reply(connection))
            except redis.ResponseError as exc:  # keep reading: the others did run
                failure = failure or exc
        if failure is not None:
            raise failure
        return replies

    def call(self, client: Client, connection: Any, command: bytes, poll: float = 0.0) -> Any:
        """Send a packed call on ``connection`` and read its reply; a missing library is loaded
        through ``client`` (not ``connection``, which may have replies queued) and the call
        sent once more."""
        try:
            return roundtrip(connection, command, poll)
        except redis.exceptions.NoScriptError:  # a restarted or flushed server
            self.load(client)
            return roundtrip(connection, command, poll)


def read_reply(connection: Any) -> Any:
    """Read one reply; a call of a function the server does not hold (restarted without
    persistence, flushed) raises NoScriptError, as a missing EVALSHA script does.

    Reads through the connection's own parser (so redis-py's later reads on it stay in step),
    without ``read_response``'s wrapping: the job path reads a reply for every job, and on a
    cold cache that wrapping costs about a fifth of a round trip's CPU. A failure drops the
    connection, as redis-py does."""
    try:
        reply = connection._parser.read_response()
    except BaseException as exc:
        translated = _dropped(connection, exc, "reading from")
        if translated is None:
            raise
        raise translated from exc
    if connection.health_check_interval:
        connection.next_health_check = time.monotonic() + connection.health_check_interval
    if not isinstance(reply, redis.ResponseError):
        return reply
    text = str(reply)
    if isinstance(reply, redis.exceptions.NoScriptError) or text.startswith("Function not found"):
        raise redis.exceptions.NoScriptError(text)
    if "unknown command" in text.lower() and "fcall" in text.lower():
        raise redis.ResponseError(NEEDS_REDIS_7 + text)
    raise reply


def send_packed(connection: Any, data: bytes) -> None:
    """``connection.send_packed_command([data])`` without its per-call wrapping once the
    connection is up (see ``read_reply``); the health check is kept (a PING after
    ``health_check_interval`` idle). A failure drops the connection, as redis-py does."""
    connection.check_health()  # first: it may reconnect, and so replace the socket
    sock = connection._sock
    if sock is None:  # not connected yet, or dropped: redis-py connects
        connection.send_packed_command([data])
        return
    try:
        _write(sock, data)
    except BaseException as exc:
        translated = _dropped(connection, exc, "writing to")
        if translated is None:
            raise
        raise translated from exc


def _write(sock: Any, data: bytes) -> None:
    """``sock.sendall(data)``. A socket with a timeout polls before every send; a plain one is
    written to straight away first (its buffer nearly always takes a command whole), which
    saves that system call per job. TLS sockets go through ``sendall``."""
    if sock.__class__ is socket.socket:
        try:
            sent = os.write(sock.fileno(), data)
        except BlockingIOError:  # the buffer is full: sendall waits, within the timeout
            sent = 0
        if sent == len(data):
            return
        data = data[sent:]
    sock.sendall(data)


def _dropped(connection: Any, exc: BaseException, doing: str) -> redis.RedisError | None:
    """A send or read failed: drop the connection (its stream is out of step), as redis-py
    does; returns redis-py's error for a socket's, None to raise ``exc`` as it is."""
    connection.disconnect()
    if isinstance(exc, TimeoutError):
        return redis.TimeoutError(f"Timeout {doing} socket")
    if isinstance(exc, OSError):
        return redis.ConnectionError(f"Error while {doing} socket: {exc}")
    return None


_local = threading.local()


def thread_connection(client: Client) -> Any:
    """A connection of the calling thread's own, made with the settings of ``client``'s pool.
    Checking one out of the pool and back costs more than packing a job (redis-py does
    bookkeeping on both); a producer thread keeps one instead. Never shared across a fork."""
    if getattr(_local, "forks", None) != forks[0]:
        _local.forks, _local.connections = forks[0], {}
    held = _local.connections.get(id(client))
    if held is None or held[0] is not client:
        pool = client.connection_pool
        held = _local.connections[id(client)] = (client, pool.connection_class(**pool.connection_kwargs))
    return held[1]


def cork(connection: Any) -> socket.socket | None:
    """Hold the small writes that follow on ``connection`` in the kernel (TCP_CORK) until
    ``uncork``, so that they reach the server as one segment and cost one read there. Linux
    sends corked data by itself after 200 ms at most, and when the process dies; so a write
    held here is as safe as one sent. Returns the corked socket, or None where corking does
    not apply (not connected yet, a Unix socket, another OS)."""
    sock = getattr(connection, "_sock", None)  # redis-py's socket; private, hence the care
    if not isinstance(sock, socket.socket) or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return None
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
    except (OSError, AttributeError):
        return None
    return sock


def uncork(sock: socket.socket) -> None:
    """Send what ``cork`` held."""
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 0)
    except OSError:  # closed since: what it held was sent when it closed
        pass


def _send_only(connection: Any, command: bytes) -> None:
    """Send without reading. A connection found dead while sending (the server restarted
    since its last use) is reopened once: the command cannot have run."""
    try:
        send_packed(connection, command)
    except redis.ConnectionError:
        send_packed(connection, command)


def roundtrip(connection: Any, command: bytes, poll: float = 0.0) -> Any:
    """Send and read the reply, polling for it first for up to ``poll`` seconds."""
    _send_only(connection, command)
    if poll:
        poll_reply(connection, poll)
    return read_reply(connection)


def command(*values: str | int | bytes) -> bytes:
    """A whole command in RESP."""
    return b"*%d\r\n%s" % (len(values), pack(values))
