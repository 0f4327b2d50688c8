"""Children take short jobs in batches where the path allows it (storage and broker on one
Redis): a batch must not hold jobs behind a long one, charge attempts it did not use, or report
a start its handler did not have. On the other backends the same tests see jobs one by one."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from oqron import Container, Job, queue
from oqron.runtime.master import HELD_RELEASE_AFTER
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


#: A child that stalls once between two jobs of a batch, as a GC pause or a starved CPU would:
#: before saying it starts the second job of a batch of eight, while the master still sees the
#: first one running and may hand the rest back.
STALLING_APP = APP + """
import oqron.runtime.messages as _messages
_send = _messages.send

def _stalling_send(fd, message):
    held = message.get("held") or ()
    if message.get("t") == "start" and len(held) == 6 and os.path.exists(os.environ["TEST_STALL"]):
        os.unlink(os.environ["TEST_STALL"])
        time.sleep(float(os.environ["TEST_STALL_SECONDS"]))
    _send(fd, message)

_messages.send = _stalling_send
"""


@pytest.mark.timeout(90)
def test_a_child_stalled_between_two_jobs_of_a_batch_runs_none_twice(
    kit: Container, spawn_master: Callable[..., MasterProcess], counter: Callable[[], dict[str, int]],
    tmp_path: Path,
) -> None:
    flag = tmp_path / "stall-once"
    env = {"TEST_STALL": str(flag), "TEST_STALL_SECONDS": str(HELD_RELEASE_AFTER * 3)}
    master = spawn_master(STALLING_APP, "--workers", "1", env=env)
    master.wait_workers(1)
    run_short_jobs(30)  # the batch grows to eight
    master.wait_workers(1)
    flag.touch()
    jobs = queue("mixed").add_bulk([{"n": n} for n in range(8)])
    assert [job.wait(timeout=30) for job in jobs] == list(range(8))
    runs = counter()
    assert [runs[job.id] for job in jobs] == [1] * 8, master.log()
    assert all(job.refresh().attempts_made == 1 for job in jobs)
    if kit.lifecycle.path.batches:
        assert not flag.exists(), "the child never took a batch of eight"
        reasons = {entry["reason"] for job in jobs[1:] for entry in job.timeline}
        assert "requeued: taken behind a long job" in reasons
        assert "refused" not in master.log()
