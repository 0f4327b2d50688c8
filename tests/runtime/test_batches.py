"""Children take short jobs in batches where the path allows it (storage and broker on one
Redis): a batch must not hold jobs behind a long one, charge attempts it did not use, or report
a start its handler did not have. On the other backends the same tests see jobs one by one."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from oqron import Container, Job, queue
from tests.support.master import MasterProcess
from tests.support.wait import wait_for

APP = """
@queue("mixed").handler
def mixed(ctx):
    time.sleep(ctx.data.get("sleep", 0))
    return ran(ctx, ctx.data["n"])
"""


def prefetched(job: Job) -> bool:
    """Whether the handler ran after the attempt began: the job waited in a batch."""
    began = [entry for entry in job.timeline if entry["to"] == "active"][-1]["ts"]
    return bool(job.started_at > began)


def run_short_jobs(count: int) -> list[Job]:
    jobs = queue("mixed").add_bulk([{"n": n} for n in range(count)])
    assert [job.wait(timeout=30) for job in jobs] == list(range(count))
    return jobs


@pytest.mark.timeout(60)
def test_short_jobs_are_taken_in_batches(kit: Container, spawn_master: Callable[..., MasterProcess]) -> None:
    spawn_master(APP, "--workers", "1").wait_workers(1)
    jobs = run_short_jobs(200)
    assert all(job.attempts_made == 1 for job in jobs)
    batched = [job for job in jobs if prefetched(job)]
    if kit.lifecycle.path.batches:
        assert len(batched) >= 100, f"{len(batched)} of 200 jobs came in batches"
    else:
        assert batched == []


@pytest.mark.timeout(60)
def test_prefetch_1_takes_jobs_one_by_one(kit: Container, spawn_master: Callable[..., MasterProcess]) -> None:
    spawn_master(APP, "--workers", "1", "--prefetch", "1").wait_workers(1)
    assert not any(prefetched(job) for job in run_short_jobs(100))


@pytest.mark.timeout(90)
def test_jobs_held_behind_a_long_job_run_in_another_child(
    kit: Container, spawn_master: Callable[..., MasterProcess]
) -> None:
    spawn_master(APP, "--workers", "2").wait_workers(2)
    batches = kit.lifecycle.path.batches
    if batches:  # short jobs grow both children's batches: the next wake-up takes 8 at once

        def both_batching() -> bool:
            return len({job.worker_id for job in run_short_jobs(100) if prefetched(job)}) == 2

        wait_for(both_batching, 60, interval=0, message="both children taking batches")
    slow, *short = queue("mixed").add_bulk([{"n": -1, "sleep": 3}] + [{"n": n} for n in range(7)])
    added = time.monotonic()
    assert [job.wait(timeout=10) for job in short] == list(range(7))
    assert time.monotonic() - added < 2.0
    assert slow.refresh().status == "active"
    assert all(job.attempts_made == 1 for job in short)
    if batches:  # the slow job's child took them all; the master handed them on
        reasons = {entry["reason"] for job in short for entry in job.timeline}
        assert "requeued: taken behind a long job" in reasons
    assert slow.wait(timeout=10) == -1
