"""The job path's own sends and reads (``packed.send_packed`` / ``read_reply``, which skip
redis-py's per-call wrapping) behave as redis-py's do around a server that restarted: a failed
read drops the connection and the next call reconnects, and when a health check is due (an
idle spell) it reconnects before anything is sent."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from oqron.adapters.redis.packed import command, read_reply, roundtrip, send_packed
from tests.support.redis_server import RedisServer


@pytest.fixture
def server() -> Iterator[RedisServer]:
    started = RedisServer().start()
    yield started
    started.close()


def connection_to(server: RedisServer, health_check_interval: int) -> Any:
    client = redis.Redis(port=server.port, decode_responses=True, socket_timeout=5,
                         health_check_interval=health_check_interval)
    pool = client.connection_pool
    return pool.connection_class(**pool.connection_kwargs)


def test_a_read_that_fails_drops_the_connection_and_the_next_call_reconnects(server: RedisServer) -> None:
    connection = connection_to(server, health_check_interval=0)
    assert roundtrip(connection, command("ECHO", "one")) == "one"
    server.restart()
    with pytest.raises(redis.ConnectionError):
        send_packed(connection, command("ECHO", "lost"))  # may still leave: the peer's reset
        read_reply(connection)  # comes back with the read
    assert connection._sock is None
    assert roundtrip(connection, command("ECHO", "two")) == "two"


def test_after_an_idle_spell_the_health_check_reconnects_before_sending(server: RedisServer) -> None:
    connection = connection_to(server, health_check_interval=1)
    assert roundtrip(connection, command("ECHO", "one")) == "one"
    server.restart()
    connection.next_health_check = time.monotonic() - 1  # idle past the interval: a check is due
    send_packed(connection, command("ECHO", "two"))
    assert read_reply(connection) == "two"


def test_an_error_reply_is_raised_and_keeps_the_connection(server: RedisServer) -> None:
    connection = connection_to(server, health_check_interval=0)
    with pytest.raises(redis.ResponseError):
        roundtrip(connection, command("NOSUCHCOMMAND"))
    assert connection._sock is not None
    assert roundtrip(connection, command("ECHO", "still")) == "still"


def test_a_command_larger_than_the_socket_buffer_is_sent_whole(server: RedisServer) -> None:
    """The first write may take part of it (the socket's buffer is full): the rest follows."""
    connection = connection_to(server, health_check_interval=0)
    assert roundtrip(connection, command("ECHO", "connected")) == "connected"
    value = b"".join(b"%09d\n" % i for i in range(1_000_000))  # 10 MB, far beyond a socket buffer
    assert roundtrip(connection, command("SET", "big", value)) == "OK"
    assert roundtrip(connection, command("STRLEN", "big")) == len(value)
    assert roundtrip(connection, command("GETRANGE", "big", 0, 9)) == "000000000\n"
    assert roundtrip(connection, command("GETRANGE", "big", -10, -1)) == "000999999\n"
