"""Every statement the SQLite adapters run is served by an index: no table scan, no walk over a
whole prefix, no sort of the jobs table in memory.

The statements are captured as SQLite runs them (with their values), while every public method
is exercised, then each one is explained (``EXPLAIN QUERY PLAN``) on a separate connection.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from oqron.adapters.sqlite import SqliteBroker, SqliteLock, SqliteStorage
from oqron.job import new_record
from tests.support.clock import FakeClock

PREFIX = "oqron:plans:test:"


def record(job_id: str, queue: str = "q") -> dict:
    return new_record(job_id=job_id, queue=queue, data={}, status="waiting", options={},
                      max_attempts=1, priority=0, project="p", environment="e")


def exercise(storage: SqliteStorage, broker: SqliteBroker, lock: SqliteLock, clock: FakeClock) -> None:
    storage.create_jobs([record(f"j{i}") for i in range(5)] + [record("x", "q2")])
    storage.get_jobs(["j1", "nope"])
    storage.update_job("j1", {"status": "completed"}, expect={"attempts_made": 0},
                       expect_status=["waiting"], append={"logs": [{"m": 1}]})
    for queue in ("q", None):
        for status in ("completed", None):
            for oldest_first in (False, True):
                storage.list_jobs(queue, status, limit=2, offset=1, oldest_first=oldest_first)
            storage.count_jobs(queue, status)
    storage.queue_names()
    storage.prune_jobs("q", "completed", keep=0, older_than=0.0)
    storage.delete_jobs(["j2"])
    storage.put_doc("d", "k", {"v": 1}, expect=None, fence=1)
    storage.put_doc("d", "k", {"v": 2}, expect={"v": 1})
    storage.get_doc("d", "k"), storage.list_docs("d"), storage.delete_doc("d", "k")

    broker.publish("q", ["a", "b"], strategy="priority", priority=2)
    broker.publish("q", ["later"], delay=1)
    clock.advance(2)
    lease = broker.claim(["empty", "q"], "c1", 10)
    assert lease is not None
    broker.renew([lease], 10)
    broker.leases_of("c1")
    broker.nack(lease)
    lease = broker.claim(["q"], "c1", 10)
    assert lease is not None
    broker.nack(lease, delay=5)
    lease = broker.claim(["q"], "c1", 10, timeout=0.01)
    assert lease is not None
    clock.advance(20)
    broker.expired_leases("q")
    broker.ack(lease)
    broker.pause("q"), broker.is_paused("q"), broker.resume("q"), broker.counts("q")
    broker.remove("q", "a")
    broker.drain("q")
    broker.obliterate("q")

    lock.acquire("k", "a", 5), lock.renew("k", "a", 5), lock.owner("k"), lock.epoch("k")
    lock.release("k", "a")


def bad_steps(plan: list[str]) -> list[str]:
    """Plan lines that read more than the rows asked for."""
    bad = []
    for step in plan:
        if step.startswith("SCAN ") and step != "SCAN CONSTANT ROW":
            bad.append(step)  # a full scan
        elif step.endswith("USING PRIMARY KEY (scope=?)") and "oqron_job_queues" not in step:
            bad.append(step)  # every row of the prefix (fine only for the list of queue names)
        elif "TEMP B-TREE" in step:
            bad.append(step)  # a sort of every matching row
    return bad


def test_every_statement_is_served_by_an_index(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'plans.db'}"
    clock = FakeClock()
    adapters = (SqliteStorage(url, PREFIX), SqliteBroker(url, PREFIX, clock=clock), SqliteLock(url, PREFIX))
    statements: list[str] = []
    for adapter in adapters:
        with adapter.db.read() as conn:
            conn.set_trace_callback(statements.append)
    try:
        exercise(*adapters, clock=clock)
    finally:
        for adapter in adapters:
            adapter.close()

    explain = sqlite3.connect(tmp_path / "plans.db")
    checked, failures = set(), []
    for sql in statements:
        verb = sql.lstrip().split(None, 1)[0].upper()
        if verb not in ("SELECT", "UPDATE", "DELETE", "INSERT") or sql in checked:
            continue
        checked.add(sql)
        plan = [row[3] for row in explain.execute(f"EXPLAIN QUERY PLAN {sql}")]
        if bad_steps(plan):
            failures.append(f"{sql}\n    -> {bad_steps(plan)}")
    explain.close()
    assert len(checked) > 40, "the statements were not captured"
    assert not failures, "statements not served by an index:\n" + "\n".join(failures)
