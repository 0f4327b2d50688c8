"""A job saved to storage but never published (its producer died between the two) is found by
reconciliation and runs."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from oqron import Container, queue
from oqron.job import new_record
from oqron.registry import registry
from oqron.runtime.recovery import UNPUBLISHED_AFTER, Recovery
from tests.support.master import MasterProcess


def orphan(kit: Container, queue_name: str, status: str = "waiting", **fields: object) -> str:
    """Store a record the way add() does, then 'die' before publishing it."""
    record = new_record(job_id=f"orphan-{status}-{time.monotonic_ns()}", queue=queue_name, data={"n": 1},
                        status=status, options={}, max_attempts=1, priority=0,
                        project=kit.config.project, environment=kit.config.environment)
    record.update(fields)
    assert kit.storage.create_jobs([record]) == [True]
    return str(record["id"])


def test_reconcile_publishes_what_the_broker_lacks(kit: Container) -> None:
    q = queue("recon")
    old = time.time() - UNPUBLISHED_AFTER - 5
    waiting = orphan(kit, "recon", queued_at=old)
    delayed = orphan(kit, "recon", status="delayed", run_at=old)
    fresh = orphan(kit, "recon")  # too young: its producer may still be about to publish it
    published = q.add({"normal": True})
    parent = q.add({}, delay=0)
    child = q.add({}, depends_on=[parent.id])
    kit.storage.update_job(parent.id, {"status": "completed"})  # completed, children never told

    recovery = Recovery(kit.lifecycle, registry, kit.config)
    assert recovery.reconcile(["recon"]) == 2
    ready = set()
    while (lease := kit.broker.claim(["recon"], "c", 30)) is not None:
        ready.add(lease.job_id)
    assert {waiting, delayed, published.id, parent.id, child.id} <= ready
    assert fresh not in ready
    assert child.refresh().status == "waiting"


@pytest.mark.timeout(60)
def test_running_cluster_runs_an_unpublished_job(
    kit: Container, spawn_master: Callable[..., MasterProcess], counter: Callable[[], dict[str, int]]
) -> None:
    master = spawn_master('queue("recon").handler(lambda ctx: ran(ctx, "found"))\n', "--workers", "1")
    master.wait_workers(1)
    job_id = orphan(kit, "recon", queued_at=time.time() - UNPUBLISHED_AFTER - 5)
    job = queue("recon").job(job_id)
    assert job.wait(timeout=30) == "found"
    assert counter()[job_id] == 1
