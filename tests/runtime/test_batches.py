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
    spawn_master(APP, "--workers", "2", "--prefetch", "8").wait_workers(2)
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
    # The slow job's child usually took them all (the other child may have taken some first, if
    # it was not waiting yet): those it took were handed on by the master and ran elsewhere.
    taker = f"on {slow.worker_id}"
    held = [job for job in short if any(taker in entry["reason"] for entry in job.timeline)]
    assert all(job.worker_id != slow.worker_id for job in short)
    assert all("requeued: taken behind a long job" in [e["reason"] for e in job.timeline] for job in held)
    assert slow.wait(timeout=10) == -1


#: A child that stalls once between two jobs, as a GC pause or a starved CPU would, while the
#: master still sees the job before running and may hand back the jobs behind it: at the
#: TEST_STALL_AT-th time it reaches TEST_STALL_IN (before saying "start", or before reading the
#: batch it asked for ahead) once the TEST_STALL file exists.
STALLING_APP = APP + """
import oqron.runtime.executor as _executor
import oqron.runtime.messages as _messages
_reached = []

def _stall(point):
    if os.environ["TEST_STALL_IN"] == point and os.path.exists(os.environ["TEST_STALL"]):
        _reached.append(point)
        if len(_reached) == int(os.environ["TEST_STALL_AT"]):
            os.unlink(os.environ["TEST_STALL"])
            time.sleep(float(os.environ["TEST_STALL_SECONDS"]))

_send = _messages.send
def _stalling_send(fd, message):
    if message.get("t") == "start":
        _stall("start")
    _send(fd, message)
_messages.send = _stalling_send

_taken_ahead = _executor.Executor.taken_ahead
def _stalling_taken_ahead(self):
    _stall("collect")
    return _taken_ahead(self)
_executor.Executor.taken_ahead = _stalling_taken_ahead
"""


@pytest.mark.timeout(60)
def test_medium_jobs_are_taken_one_ahead_while_the_queue_has_a_backlog(
    kit: Container, spawn_master: Callable[..., MasterProcess], counter: Callable[[], dict[str, int]]
) -> None:
    spawn_master(APP, "--workers", "1").wait_workers(1)
    jobs = queue("mixed").add_bulk([{"n": n, "sleep": 0.02} for n in range(12)])
    assert [job.wait(timeout=30) for job in jobs] == list(range(12))
    runs = counter()
    assert [runs[job.id] for job in jobs] == [1] * 12
    assert all(job.refresh().attempts_made == 1 for job in jobs)
    ahead = [job.data["n"] for job in jobs if prefetched(job)]
    if kit.lifecycle.path.batches:  # from the second on, each is taken while the one before runs
        assert len(ahead) >= 9, f"jobs taken ahead: {ahead}"
        assert ahead[-1] == 11
    else:
        assert ahead == []


@pytest.mark.timeout(60)
def test_medium_jobs_are_not_taken_ahead_unless_every_child_has_one(
    kit: Container, spawn_master: Callable[..., MasterProcess]
) -> None:
    # Three children, two of them busy: the third sees three jobs at a time, fewer than the
    # children, so it takes them one by one rather than hold one behind the one it runs.
    spawn_master(APP, "--workers", "3").wait_workers(3)
    long = queue("mixed").add_bulk([{"n": -1, "sleep": 5}, {"n": -2, "sleep": 5}])
    wait_for(lambda: all(job.refresh().status == "active" for job in long), 10,
             message="two children busy")
    for _ in range(3):
        three = queue("mixed").add_bulk([{"n": n, "sleep": 0.02} for n in range(3)])
        assert [job.wait(timeout=10) for job in three] == [0, 1, 2]
        assert not any(prefetched(job) for job in three)
    assert all(job.refresh().status == "active" for job in long), "the long jobs ended too soon"


@pytest.mark.timeout(90)
@pytest.mark.parametrize(
    ("point", "stall_at", "jobs", "sleep"),
    [("start", 2, 8, 0), ("start", 9, 16, 0), ("collect", 1, 16, 0), ("collect", 2, 12, 0.02)],
    ids=["before-the-second-of-a-batch", "before-the-first-taken-ahead",
         "before-reading-the-batch-taken-ahead", "before-reading-a-medium-job-taken-ahead"],
)
def test_a_child_stalled_between_two_jobs_runs_none_twice(
    kit: Container, spawn_master: Callable[..., MasterProcess], counter: Callable[[], dict[str, int]],
    tmp_path: Path, point: str, stall_at: int, jobs: int, sleep: float,
) -> None:
    if point == "collect" and not kit.lifecycle.path.batches:
        pytest.skip("batches are taken ahead on the Redis path only")
    flag = tmp_path / "stall-once"
    env = {"TEST_STALL": str(flag), "TEST_STALL_IN": point, "TEST_STALL_AT": str(stall_at),
           "TEST_STALL_SECONDS": str(HELD_RELEASE_AFTER * 3)}
    master = spawn_master(STALLING_APP, "--workers", "1", "--prefetch", "8", env=env)
    master.wait_workers(1)
    run_short_jobs(30)  # the batch grows to eight
    master.wait_workers(1)
    flag.touch()
    added = queue("mixed").add_bulk([{"n": n, "sleep": sleep} for n in range(jobs)])
    assert [job.wait(timeout=30) for job in added] == list(range(jobs))
    assert not flag.exists(), "the child never stalled"
    runs = counter()
    assert [runs[job.id] for job in added] == [1] * jobs, master.log()
    assert all(job.refresh().attempts_made == 1 for job in added)
    if kit.lifecycle.path.batches:
        reasons = {entry["reason"] for job in added[1:] for entry in job.timeline}
        assert "requeued: taken behind a long job" in reasons
        assert "refused" not in master.log()


@pytest.mark.timeout(90)
def test_a_batch_taken_ahead_behind_a_long_job_runs_in_another_child(
    kit: Container, spawn_master: Callable[..., MasterProcess], counter: Callable[[], dict[str, int]]
) -> None:
    if not kit.lifecycle.path.batches:
        pytest.skip("batches are taken on the Redis path only")
    spawn_master(APP, "--workers", "2", "--prefetch", "8").wait_workers(2)

    def both_batching() -> bool:
        return len({job.worker_id for job in run_short_jobs(100) if prefetched(job)}) == 2

    wait_for(both_batching, 60, interval=0, message="both children taking batches")
    blocker = queue("mixed").add({"n": -2, "sleep": 1.0})  # keeps one child busy for a second
    wait_for(lambda: blocker.refresh().status == "active", 10, message="the blocker running")
    # The free child takes eight, the second of them long; the first one's end asks for the
    # next eight, which must not wait for the long job either.
    items = [{"n": 0}, {"n": -1, "sleep": 4}] + [{"n": n} for n in range(2, 16)]
    first, slow, *short = queue("mixed").add_bulk(items)
    added = time.monotonic()
    assert [job.wait(timeout=10) for job in [first, *short]] == [0, *range(2, 16)]
    assert time.monotonic() - added < 3.0
    assert slow.refresh().status == "active"
    runs = counter()
    assert all(runs[job.id] == 1 for job in [first, *short])
    ahead = [job for job in short[6:] if job.worker_id != slow.worker_id]
    assert ahead, "no job of the next batch ran in the other child"
    assert slow.wait(timeout=10) == -1
