"""A producer's add polls for its reply before sleeping on it (``replypoll``): the poll ends
as soon as the reply is there, it backs off when replies keep coming later than its budget,
and it follows the connection when that reconnects."""

from __future__ import annotations

import select
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import redis

from oqron import OqronKit, define_config, queue
from oqron.adapters.redis.packed import command, roundtrip, thread_connection
from oqron.adapters.redis.replypoll import MAX_PAUSE, ReplyPoller
from tests.support.redis_server import RedisServer


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    near, far = socket.socketpair()
    yield near, far
    near.close()
    far.close()


def test_a_poll_ends_when_data_comes_not_at_its_budget(pair: tuple[socket.socket, socket.socket]) -> None:
    near, far = pair
    poller = ReplyPoller(near, select.poll)
    threading.Timer(0.02, far.send, (b"+OK\r\n",)).start()
    started = time.perf_counter()
    assert poller.wait(5.0)
    assert time.perf_counter() - started < 2.5


def test_polls_that_run_out_of_time_in_a_row_back_off_and_a_reply_in_time_resets(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    near, far = pair
    polls = []

    class CountingPoll:
        def __init__(self) -> None:
            self.real = select.poll()
            self.register = self.real.register

        def poll(self, timeout: int) -> list[tuple[int, int]]:
            polls.append(timeout)
            return self.real.poll(timeout)

    poller = ReplyPoller(near, CountingPoll)
    pauses = []
    for _ in range(9):
        started = time.perf_counter()
        assert not poller.wait(0.001)
        assert time.perf_counter() - started >= 0.001  # it did poll, for its whole budget
        pauses.append(poller.paused)
        polls.clear()
        for _ in range(poller.paused):  # waits that sleep instead: no poll
            assert not poller.wait(0.001)
        assert polls == [] and poller.paused == 0
    assert pauses == [0, 1, 3, 7, 15, 31, 63, MAX_PAUSE, MAX_PAUSE]
    far.send(b"+OK\r\n")
    assert poller.wait(0.001) and poller.misses == 0
    near.recv(100)
    assert not poller.wait(0.001) and poller.paused == 0  # one miss after a reply: no pause


def test_the_poller_follows_a_reconnected_socket() -> None:
    server = RedisServer().start()
    try:
        connection = redis.Redis(port=server.port).connection_pool.make_connection()
        assert roundtrip(connection, command("ECHO", "one"), 0.01) == b"one"
        first = connection._oqron_reply_poller
        assert first.sock is connection._sock and first.misses == 0
        server.restart()
        with pytest.raises(redis.ConnectionError):
            roundtrip(connection, command("ECHO", "lost"), 0.01)
            roundtrip(connection, command("ECHO", "lost"), 0.01)
        assert roundtrip(connection, command("ECHO", "two"), 0.01) == b"two"
        assert connection._oqron_reply_poller is not first
        assert connection._oqron_reply_poller.sock is connection._sock
    finally:
        server.close()


@pytest.mark.parametrize("reply_poll", [0.0, 0.001])
def test_adds_poll_only_when_reply_poll_is_set(redis_url: str, reply_poll: float) -> None:
    OqronKit.init(define_config(project=f"poll{int(reply_poll * 1e6)}", storage=redis_url, broker=redis_url,
                                lock=redis_url, reply_poll=reply_poll))
    try:
        jobs = queue("polled")
        added = [jobs.add({"n": n}) for n in range(20)]
        assert {job.id: job.data for job in jobs.get_jobs(limit=50)} == {job.id: job.data for job in added}
        connection = thread_connection(jobs.lifecycle.path.broker.client)
        poller = getattr(connection, "_oqron_reply_poller", None)
        assert (poller is not None) == (reply_poll > 0)
    finally:
        OqronKit.stop()
