"""EVALSHA packed by hand for the job hot path.

redis-py encodes every argument of every command through several layers of Python; a take
or finish carries thirty-odd arguments, most of them the same on every call (key names,
consumer id, project). Packing them once into RESP bytes and sending the bytes over the
client's own connection removes about a fifth of a child's CPU per job.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

import redis

Client = Any


def bulk(value: str | int | bytes) -> bytes:
    """One RESP bulk string."""
    data = value if isinstance(value, bytes) else str(value).encode()
    return b"$%d\r\n%s\r\n" % (len(data), data)


def pack(values: Iterable[str | int | bytes]) -> bytes:
    return b"".join(bulk(value) for value in values)


class PackedScript:
    """A Lua script called with pre-packed arguments on a single-connection client."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest().encode()

    def __call__(self, client: Client, numkeys: int, items: int, body: bytes) -> Any:
        """``body`` holds the packed keys then arguments, ``items`` of them in all."""
        command = b"*%d\r\n$7\r\nEVALSHA\r\n$40\r\n%s\r\n%s%s" % (items + 3, self.sha, bulk(numkeys), body)
        connection = client.connection
        try:
            return self._send(connection, command)
        except redis.exceptions.NoScriptError:  # a restarted or flushed server
            client.script_load(self.source)
            return self._send(connection, command)

    @staticmethod
    def _send(connection: Any, command: bytes) -> Any:
        connection.send_packed_command([command])
        return connection.read_response()
