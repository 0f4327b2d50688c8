"""The SQLite broker across real processes: one file, forked children, no server.

Children are forked from the test process and use adapters built before the fork (each child
re-opens its own connection on first use). They report over a ``multiprocessing.Pipe`` and leave
with ``os._exit``; every wait has a deadline.
"""

from __future__ import annotations

import os
import resource
import signal
import time
import traceback
from collections.abc import Callable, Iterator
from multiprocessing import Pipe
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import pytest

from oqron.adapters.sqlite import SqliteBroker
from oqron.adapters.sqlite.broker import SAFETY_WAIT
from oqron.errors import LeaseLost
from tests.support.wait import wait_for

PREFIX = "oqron:proc:test:"


class Child:
    """A forked process running ``target(channel)``; its exit code says whether it raised."""

    def __init__(self, target: Callable[[Connection], None]) -> None:
        ours, theirs = Pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            code = 1
            try:
                ours.close()
                target(theirs)
                code = 0
            except BaseException:  # noqa: BLE001 - the child reports anything, then exits 1
                traceback.print_exc()
            finally:
                os._exit(code)
        theirs.close()
        self.pid = pid
        self.channel = ours
        self.exit_code: int | None = None

    def recv(self, timeout: float = 10.0) -> Any:
        if not self.channel.poll(timeout):
            raise AssertionError(f"child {self.pid} said nothing within {timeout} s")
        return self.channel.recv()

    def join(self, timeout: float = 10.0) -> int:
        deadline = time.monotonic() + timeout
        while self.exit_code is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.exit_code = os.waitstatus_to_exitcode(status)
            elif time.monotonic() > deadline:
                self.kill()
                raise AssertionError(f"child {self.pid} still running after {timeout} s")
            else:
                time.sleep(0.005)
        return self.exit_code

    def kill(self) -> None:
        if self.exit_code is None:
            os.kill(self.pid, signal.SIGKILL)
            self.exit_code = os.waitstatus_to_exitcode(os.waitpid(self.pid, 0)[1])


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'shared.db'}"


@pytest.fixture
def broker(url: str) -> Iterator[SqliteBroker]:
    adapter = SqliteBroker(url, PREFIX)
    yield adapter
    adapter.close()


@pytest.fixture
def children() -> Iterator[list[Child]]:
    """Children started by a test; any left running are killed at the end."""
    started: list[Child] = []
    yield started
    for child in started:
        child.kill()


def bells(broker: SqliteBroker) -> list[str]:
    directory = broker.bells.directory
    return os.listdir(directory) if os.path.isdir(directory) else []


def test_four_processes_claim_every_job_exactly_once(
    broker: SqliteBroker, children: list[Child]
) -> None:
    ids = [f"job-{i}" for i in range(2000)]
    broker.publish("q", ids)
    start_r, start_w = os.pipe()

    def consume(channel: Connection) -> None:
        os.close(start_w)
        os.read(start_r, 1)  # start together, to contend for the same rows
        claimed = []
        while (lease := broker.claim(["q"], f"c{os.getpid()}", 30.0)) is not None:
            broker.ack(lease)
            claimed.append(lease.job_id)
        channel.send(claimed)

    children.extend(Child(consume) for _ in range(4))
    os.close(start_r)
    os.close(start_w)  # EOF releases every child at once
    per_child = [child.recv(timeout=60) for child in children]
    assert [child.join() for child in children] == [0, 0, 0, 0]
    claimed = [job_id for batch in per_child for job_id in batch]
    assert len(claimed) == len(ids)
    assert set(claimed) == set(ids)
    assert all(per_child), "every process should have won some claims"
    assert broker.counts("q") == {"waiting": 0, "delayed": 0, "active": 0}


def test_a_waiter_in_another_process_is_woken_by_a_publish(
    broker: SqliteBroker, children: list[Child]
) -> None:
    def wait_for_job(channel: Connection) -> None:
        broker.reset_after_fork()  # what a forked child does (the other tests rely on the pid check)
        lease = broker.claim(["other", "q"], "waiter", 30.0, timeout=10.0)
        channel.send((time.monotonic(), lease.job_id if lease else None))

    children.append(child := Child(wait_for_job))
    wait_for(lambda: bells(broker), 5, interval=0.002, message="the child to block on its bell")
    published = time.monotonic()  # CLOCK_MONOTONIC is system-wide: comparable across processes
    broker.publish("q", ["wake-up"])
    woken, job_id = child.recv()
    assert job_id == "wake-up"
    # Woken by the publish's bell, not by the waiter's safety-net look (SAFETY_WAIT, 2 s),
    # with room for a loaded 2-core machine.
    assert woken - published < SAFETY_WAIT / 4
    assert child.join() == 0
    assert bells(broker) == []  # the waiter removed its bell


def test_a_blocked_claim_sleeps_without_cpu(broker: SqliteBroker) -> None:
    before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.monotonic()
    assert broker.claim(["q"], "idle", 30.0, timeout=1.0) is None
    after = resource.getrusage(resource.RUSAGE_SELF)
    assert time.monotonic() - started >= 0.99
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    assert cpu < 0.05, f"an idle claim used {cpu:.3f} s of CPU in 1 s"


def test_a_dead_waiters_bell_is_removed_by_the_next_ring(
    broker: SqliteBroker, children: list[Child]
) -> None:
    children.append(
        child := Child(lambda channel: broker.claim(["q"], "doomed", 30.0, timeout=30.0) and None)
    )
    wait_for(lambda: bells(broker), 5, interval=0.002, message="the child to block on its bell")
    child.kill()
    assert len(bells(broker)) == 1  # SIGKILL left the socket file behind
    broker.publish("q", ["a"])
    assert bells(broker) == []
    assert broker.claim(["q"], "survivor", 30.0) is not None


def test_expired_lease_goes_to_a_second_claimer_and_the_stale_ack_is_refused(
    broker: SqliteBroker, children: list[Child]
) -> None:
    broker.publish("q", ["slow"])

    def hung_worker(channel: Connection) -> None:
        lease = broker.claim(["q"], "first", 0.2)
        channel.send(lease.token if lease else None)
        channel.recv()  # "hang" until told to finish, long after the lease expired
        try:
            broker.ack(lease)  # type: ignore[arg-type]
            channel.send("acked")
        except LeaseLost:
            channel.send("lease lost")

    def second_worker(channel: Connection) -> None:
        lease = broker.claim(["q"], "second", 30.0, timeout=5.0)
        assert lease is not None
        broker.ack(lease)
        channel.send(lease.token)

    children.append(first := Child(hung_worker))
    first_token = first.recv()
    assert first_token is not None
    [expired] = wait_for(lambda: broker.expired_leases("q"), 5, message="the lease to expire")
    assert (expired.job_id, expired.token, expired.consumer) == ("slow", first_token, "first")
    broker.nack(expired)  # what stall recovery does
    children.append(second := Child(second_worker))
    second_token = second.recv()
    assert second_token != first_token
    first.channel.send("finish now")
    assert first.recv() == "lease lost"
    assert [first.join(), second.join()] == [0, 0]
    assert broker.counts("q") == {"waiting": 0, "delayed": 0, "active": 0}
