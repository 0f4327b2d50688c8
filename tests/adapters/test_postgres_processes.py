"""PostgreSQL adapters across real forked processes: exactly-once claims, LISTEN/NOTIFY wake-ups,
concurrent first use of an empty schema, and fork hygiene (a child never disturbs the parent's
connection)."""

from __future__ import annotations

import multiprocessing
import os
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from multiprocessing.connection import Connection
from typing import Any

import pytest

from oqron.adapters.postgres import PostgresBroker, PostgresStorage
from oqron.adapters.postgres.broker import SAFETY_NET
from oqron.errors import AdapterUnavailable
from tests.support.postgres import ScratchDatabase
from tests.support.wait import wait_for

fork = multiprocessing.get_context("fork")
JOBS = 2_000
WORKERS = 4


def run_children(target: Callable[..., None], args_of: Callable[[int], tuple[Any, ...]],
                 n: int) -> list[Any]:
    """Fork ``n`` children running ``target(conn, *args)``; return what each sent back."""
    pipes, children = [], []
    for i in range(n):
        parent_end, child_end = fork.Pipe()
        child = fork.Process(target=target, args=(child_end, *args_of(i)))
        child.start()
        pipes.append(parent_end)
        children.append(child)
    results = [pipe.recv() if pipe.poll(60) else None for pipe in pipes]
    for child in children:
        child.join(10)
        assert child.exitcode == 0, f"child exited with {child.exitcode}"
    return results


@pytest.fixture
def broker(pg_url: str, prefix: str) -> Iterator[PostgresBroker]:
    adapter = PostgresBroker(pg_url, prefix)
    yield adapter
    adapter.close()


def claim_all(conn: Connection, broker: PostgresBroker, reset: bool) -> None:
    if reset:
        broker.reset_after_fork()  # else the pid check must notice the fork by itself
    claimed = []
    while True:
        lease = broker.claim(["q"], f"child-{os.getpid()}", 30, timeout=1.0)
        if lease is None:
            break
        broker.ack(lease)
        claimed.append(lease.job_id)
    conn.send(claimed)


def test_four_processes_claim_each_job_exactly_once(broker: PostgresBroker) -> None:
    ids = [f"job-{i}" for i in range(JOBS)]
    broker.publish("q", ids[: JOBS * 3 // 4])  # the parent's connection is open at the fork
    broker.publish("q", ids[JOBS * 3 // 4 :], delay=0.3)  # promoted while the children claim
    results = run_children(claim_all, lambda i: (broker, i % 2 == 0), WORKERS)
    claimed = [job_id for result in results for job_id in result]
    assert len(claimed) == JOBS and set(claimed) == set(ids)
    assert sum(1 for result in results if result) >= 2, [len(r) for r in results]
    # the parent's connection survived four children forgetting it
    assert broker.counts("q") == {"waiting": 0, "delayed": 0, "active": 0}


def close_inherited(conn: Connection, inherited: list[Any]) -> None:
    """A careless child closes every connection object it inherited: it must not reach the
    parent's sessions (the fork hook detached them)."""
    for connection in inherited:
        connection.close()
    conn.send("done")


def test_a_child_closing_inherited_connections_leaves_the_parent_alone(broker: PostgresBroker) -> None:
    from oqron.adapters.postgres import connection

    broker.publish("q", ["a"])
    lease = broker.claim(["q"], "c1", 30, timeout=0.1)  # opens the LISTEN connection too
    inherited = [*connection._shared.values(), *(lis._conn for lis in broker._listeners)]
    assert len(inherited) == 2
    assert run_children(close_inherited, lambda i: (inherited,), 2) == ["done", "done"]
    assert lease is not None
    broker.ack(lease)
    broker.publish("q", ["b"])
    assert broker.claim(["q"], "c1", 30, timeout=0.1) is not None


def wait_and_report(conn: Connection, url: str, prefix: str, rounds: int) -> None:
    broker = PostgresBroker(url + "?application_name=oqron-waiter", prefix)
    for _ in range(rounds):
        lease = broker.claim(["wake"], "waiter", 30, timeout=20)
        woke = time.time()
        assert lease is not None
        broker.ack(lease)
        conn.send(woke)
    broker.close()


def waiter_is_blocked(db: ScratchDatabase) -> bool:
    """The waiter's last statement was its claim and it is idle: it now sits in ``poll()``
    on its LISTEN connection (registered before that claim)."""
    with closing(db.connect()) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT 1 FROM pg_stat_activity WHERE datname = current_database() "
            "AND application_name = 'oqron-waiter' AND state = 'idle' "
            "AND query LIKE '/* oqron:claim */%%' AND state_change < now() - interval '20 ms'"
        )
        return cur.fetchone() is not None


def test_notify_wakes_a_claimer_in_another_process(broker: PostgresBroker, pg_database: ScratchDatabase,
                                                   prefix: str) -> None:
    rounds = 3
    parent_end, child_end = fork.Pipe()
    child = fork.Process(target=wait_and_report, args=(child_end, pg_database.url, prefix, rounds))
    child.start()
    try:
        latencies = []
        for i in range(rounds):
            wait_for(lambda: waiter_is_blocked(pg_database), 10, message="the waiter to block")
            published = time.time()
            broker.publish("wake", [f"w{i}"])
            assert parent_end.poll(5), "the waiter was not woken"
            latencies.append(parent_end.recv() - published)
        # Woken by NOTIFY, not by the listener's safety-net poll (SAFETY_NET, 5 s): the bound
        # leaves room for a loaded 2-core machine (106 ms was seen under the parallel suite).
        assert max(latencies) < SAFETY_NET / 5, latencies
    finally:
        child.join(10)
        if child.exitcode is None:
            child.kill()
    assert child.exitcode == 0


def first_use(conn: Connection, url: str, barrier: Any) -> None:
    storage = PostgresStorage(url, "oqron:mig:test:")
    barrier.wait(10)
    try:
        conn.send(storage.count_jobs())
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which fails the test
        conn.send(repr(exc))


def test_concurrent_first_use_migrates_once(pg_database: ScratchDatabase) -> None:
    schema = f"fresh_{secrets.token_hex(4)}"
    url = f"{pg_database.url}?schema={schema}"
    barrier = fork.Barrier(WORKERS)
    assert run_children(first_use, lambda i: (url, barrier), WORKERS) == [0] * WORKERS
    with closing(pg_database.connect()) as conn, conn.cursor() as cur:
        cur.execute(f"SELECT version FROM {schema}.oqron_schema_migrations")
        assert cur.fetchall() == [(1,)]
        cur.execute(f"DROP SCHEMA {schema} CASCADE")


def test_unreachable_server_is_adapter_unavailable(prefix: str) -> None:
    from tests.support.ports import free_port

    storage = PostgresStorage(f"postgresql://postgres@127.0.0.1:{free_port()}/x", prefix)
    with pytest.raises(AdapterUnavailable, match=r"postgresql: .*refused"):
        storage.get_job("a")
