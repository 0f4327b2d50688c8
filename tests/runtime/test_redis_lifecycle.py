"""The job life cycle on a real Redis: fencing by lease tokens, many consumer processes."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from collections import Counter

import pytest
import redis

from oqron import Container, Job, LeaseLost, OqronKit, define_config, queue
from oqron.adapters.redis.connection import MAX_BLOCK
from oqron.errors import AdapterUnavailable
from oqron.lifecycle import Claimed
from oqron.registry import registry
from oqron.runtime.executor import Attempt, Executor
from tests.support.wait import wait_for


@pytest.fixture
def kit(redis_url: str, project: str) -> Container:
    return OqronKit.init(define_config(storage=redis_url, broker=redis_url, lock=redis_url, project=project))


def test_expired_lease_is_taken_over_and_the_stale_finish_refused(kit: Container) -> None:
    q = queue("q")
    job = q.add({"n": 1})
    life = kit.lifecycle
    first = life.claim(["q"], "consumer-a", lease_ttl=0.3)
    assert first is not None and first.record["status"] == "active"

    wait_for(lambda: kit.broker.expired_leases("q"), 5, message="lease expiry")
    assert life.recover_expired("q", q, max_stalled=2) == [job.id]
    assert job.refresh().status == "waiting" and job.record["stalled_count"] == 1

    second = life.claim(["q"], "consumer-b", lease_ttl=30)
    assert second is not None and second.job_id == job.id
    assert second.lease.token != first.lease.token
    assert second.record["attempts_made"] == 2

    with pytest.raises(LeaseLost):
        life.record(life.completion(first, {"by": "a"}, q))
    with pytest.raises(LeaseLost):
        kit.broker.ack(first.lease)
    job.refresh()
    assert job.status == "active" and job.attempts_made == 2
    assert job.record["worker_id"] == "consumer-b" and job.record["lease_token"] == second.lease.token
    assert job.return_value is None

    life.record(life.completion(second, {"by": "b"}, q))
    assert job.refresh().status == "completed" and job.return_value == {"by": "b"}
    assert kit.broker.counts("q") == {"waiting": 0, "delayed": 0, "active": 0}


def test_stalls_beyond_the_limit_fail_the_job(kit: Container) -> None:
    q = queue("q")
    job = q.add({})
    for _ in range(3):
        claimed = kit.lifecycle.claim(["q"], "c", lease_ttl=0.05)
        assert claimed is not None and claimed.record["status"] == "active"
        wait_for(lambda: kit.broker.expired_leases("q"), 5, message="lease expiry")
        kit.lifecycle.recover_expired("q", q, max_stalled=2)
    job.refresh()
    assert job.status == "failed" and job.record["stalled_count"] == 3
    assert job.error["type"] == "JobStalled"
    assert kit.broker.counts("q") == {"waiting": 0, "delayed": 0, "active": 0}


def _consume(queues: list[str], consumer: str, out: multiprocessing.Queue) -> None:
    container = Container.get()
    container.after_fork()
    executor = Executor(container.lifecycle, registry, consumer)
    claimed_ids = []
    while True:
        claimed = container.lifecycle.claim(queues, consumer, lease_ttl=30, timeout=0.5)
        if claimed is None:
            break
        claimed_ids.append(claimed.job_id)
        executor.execute(claimed)
    out.put(claimed_ids)
    out.close()
    out.join_thread()  # flush before _exit skips the feeder thread
    os._exit(0)


def test_ten_thousand_jobs_four_processes_each_claimed_once(kit: Container) -> None:
    q = queue("bulk")

    @q.handler
    def run(ctx):  # type: ignore[no-untyped-def]
        return ctx.data["n"]

    jobs = q.add_bulk([{"n": i} for i in range(10_000)])
    assert q.count("waiting") == 10_000
    context = multiprocessing.get_context("fork")
    out = context.Queue()
    workers = [context.Process(target=_consume, args=(["bulk"], f"c{i}", out)) for i in range(4)]
    for worker in workers:
        worker.start()
    claimed = [job_id for _ in workers for job_id in out.get(timeout=120)]
    for worker in workers:
        worker.join(10)
    counts = Counter(claimed)
    assert len(counts) == 10_000 and set(counts.values()) == {1}
    assert counts.keys() == {j.id for j in jobs}
    assert q.count("completed") == 10_000
    assert q.count("waiting") == 0 and q.count("active") == 0
    assert kit.broker.counts("bulk") == {"waiting": 0, "delayed": 0, "active": 0}


def test_ends_sent_ahead_survive_a_dropped_connection(kit: Container, redis_url: str) -> None:
    """Finishes sent without waiting, then the connection dies before their replies are read:
    the next step resends them (refused by token if they had landed) and nothing is lost,
    recorded twice or misread."""
    q = queue("q")
    jobs = q.add_bulk([{"n": n} for n in range(4)])
    life = kit.lifecycle
    taken = life.claim_many(["q"], "consumer-a", 30.0, 4)
    assert [c.job_id for c in taken] == [j.id for j in jobs]
    ended: list[str] = []
    for claimed in taken[:2]:
        life.record_later(life.completion(claimed, claimed.record["data"]["n"]), ended.append)
    killer = redis.Redis.from_url(redis_url)
    wait_for(lambda: killer.client_kill_filter(skipme=True), 5, message="connections killed")
    killer.close()
    try:  # the dead connection may only show when this step reads its reply
        life.record(life.completion(taken[2], 2))
    except AdapterUnavailable:
        life.record(life.completion(taken[2], 2))  # as the executor retries while Redis is away
    assert ended == []  # refused resends are not reported as refusals of the attempt
    life.record_later(life.completion(taken[3], 3), ended.append)
    life.path.flush()
    assert [j.wait(timeout=5) for j in jobs] == [0, 1, 2, 3]
    assert [j.refresh().attempts_made for j in jobs] == [1, 1, 1, 1]
    assert all(len([e for e in j.timeline if e["to"] == "completed"]) == 1 for j in jobs)


def test_a_finish_sent_ahead_takes_the_next_jobs(kit: Container, redis_url: str) -> None:
    """A finish that also takes (take-ahead) hands its jobs over when asked, started and leased
    to the consumer, without waiting for the finishes sent after it; if the connection dies
    before its reply is read, no job is lost: each is either handed over or still leased to the
    consumer (for the master or stall recovery to requeue)."""
    q = queue("q")
    jobs = q.add_bulk([{"n": n} for n in range(8)])
    life = kit.lifecycle
    request = life.take_request(["q"], "consumer-a", 30.0)
    first = life.claim_many(["q"], "consumer-a", 30.0, 2)
    ended: list[str] = []
    life.record_later(life.completion(first[0], 0), ended.append, request, 3)
    life.record_later(life.completion(first[1], 1), ended.append)
    ahead = life.path.taken_ahead()
    assert [c.job_id for c in ahead] == [j.id for j in jobs[2:5]]
    assert all(c.record["status"] == "active" and c.record["attempts_made"] == 1 for c in ahead)
    assert life.path.taken_ahead() == []
    life.record_later(life.completion(ahead[0], 2), ended.append, request, 3)
    killer = redis.Redis.from_url(redis_url)
    wait_for(lambda: killer.client_kill_filter(skipme=True), 5, message="connections killed")
    killer.close()
    executor = Executor(life, registry, "consumer-a", record_retry_window=5.0)
    again = executor.taken_ahead()  # retried as the child does while Redis is away
    held = {lease.job_id for lease in kit.broker.leases_of("consumer-a")}
    assert {j.id for j in jobs[5:8]} <= {c.job_id for c in again} | held
    for claimed in [*ahead[1:], *again]:
        executor.record(Attempt(life.completion(claimed, claimed.record["data"]["n"])))
    executor.flush()
    assert ended == []
    assert [j.wait(timeout=5) for j in jobs[:5]] == [0, 1, 2, 3, 4]


def _taken_before_the_library_is_lost(
    kit: Container, redis_url: str, jobs: int, taken: int
) -> tuple[list[Job], list[Claimed]]:
    """Jobs added to queue q, some of them taken by consumer-a, then the server forgets oqron's
    function library (FUNCTION FLUSH, as a restart without persistence would)."""
    added = queue("q").add_bulk([{"n": n} for n in range(jobs)])
    claimed = kit.lifecycle.claim_many(["q"], "consumer-a", 30.0, taken)
    redis.Redis.from_url(redis_url).function_flush()
    return added, claimed


def test_a_batch_taken_ahead_survives_a_lost_function_library(kit: Container, redis_url: str) -> None:
    """The server forgets the library just before a finish that takes ahead arrives: the
    finish is resent once the library is back, and its jobs are handed over when asked."""
    jobs, first = _taken_before_the_library_is_lost(kit, redis_url, jobs=4, taken=1)
    life = kit.lifecycle
    refused: list[str] = []
    request = life.take_request(["q"], "consumer-a", 30.0)
    life.record_later(life.completion(first[0], 0), refused.append, request, 3)
    ahead = life.path.taken_ahead()
    assert [c.job_id for c in ahead] == [j.id for j in jobs[1:]]
    assert refused == []
    assert jobs[0].wait(timeout=5) == 0


def test_hot_path_functions_lost_by_the_server_are_loaded_again(kit: Container, redis_url: str) -> None:
    """The server forgets oqron's function library (FUNCTION FLUSH, or a restart without
    persistence) while finishes are in flight: the library is loaded again, the finishes that
    hit the gap are resent, each job is completed once, and taking goes on."""
    jobs, taken = _taken_before_the_library_is_lost(kit, redis_url, jobs=5, taken=4)
    life = kit.lifecycle
    refused: list[str] = []
    for claimed in taken[:3]:
        life.record_later(life.completion(claimed, claimed.record["data"]["n"]), refused.append)
    more = life.record(life.completion(taken[3], 3), life.take_request(["q"], "consumer-a", 30.0), 1)
    assert [c.job_id for c in more] == [jobs[4].id]
    redis.Redis.from_url(redis_url).function_flush()
    life.record(life.completion(more[0], 4))
    life.path.flush()
    assert refused == []
    assert [j.wait(timeout=5) for j in jobs] == [0, 1, 2, 3, 4]
    assert [j.refresh().attempts_made for j in jobs] == [1, 1, 1, 1, 1]


def _record_ahead_and_die(ids: list[str]) -> None:
    container = Container.get()
    container.after_fork()
    life = container.lifecycle
    taken = life.claim_many(["q"], "consumer-dies", 30.0, 3)
    assert [c.job_id for c in taken] == ids
    for claimed in taken[:2]:
        life.record_later(life.completion(claimed, claimed.record["data"]["n"]), lambda ending: None)
    os.kill(os.getpid(), signal.SIGKILL)  # before any step that would send what is held


def test_ends_sent_ahead_are_recorded_when_the_sender_is_killed(kit: Container) -> None:
    """Ends sent ahead are held in the kernel (corked) until the next step: a child killed
    before that step still has them recorded, like a segfault in the job after them."""
    q = queue("q")
    jobs = q.add_bulk([{"n": n} for n in range(3)])
    process = multiprocessing.get_context("fork").Process(
        target=_record_ahead_and_die, args=([j.id for j in jobs],)
    )
    process.start()
    process.join(30)
    assert process.exitcode == -signal.SIGKILL
    assert [j.wait(timeout=5) for j in jobs[:2]] == [0, 1]
    assert jobs[2].refresh().status == "active"  # taken, never run: the master's to requeue


def test_an_end_sent_ahead_is_recorded_without_a_next_step(kit: Container) -> None:
    """The job after it may run for minutes: an end sent ahead does not wait for the next step
    (the kernel sends corked writes after 200 ms)."""
    q = queue("q")
    jobs = q.add_bulk([{"n": n} for n in range(2)])
    life = kit.lifecycle
    taken = life.claim_many(["q"], "consumer-a", 30.0, 2)
    life.record_later(life.completion(taken[0], 0), lambda ending: None)
    wait_for(lambda: jobs[0].refresh().status == "completed", 2.0, message="end recorded")
    life.record(life.completion(taken[1], 1))
    assert [j.wait(timeout=5) for j in jobs] == [0, 1]


def test_a_take_after_one_that_found_nothing_waits_at_once_and_gets_what_came_meanwhile(
    kit: Container, redis_url: str
) -> None:
    """A consumer whose last take found its queues empty (nothing ready, nothing delayed) waits
    at once instead of asking again first — one round trip less each time a child runs out of
    work; a job added in between left a wake-up marker, so the wait ends at once with it."""
    q = queue("q")
    life = kit.lifecycle
    assert life.claim_many(["q"], "consumer-a", 30.0, 1) == []
    job = q.add({"n": 1})
    stats = redis.Redis.from_url(redis_url)
    stats.config_resetstat()
    started = time.monotonic()
    taken = life.claim_many(["q"], "consumer-a", 30.0, 1, timeout=MAX_BLOCK)
    waited = time.monotonic() - started
    calls = stats.info("commandstats")
    stats.close()
    assert [claimed.job_id for claimed in taken] == [job.id]
    assert waited < MAX_BLOCK / 2  # the marker ended the wait, not its timeout
    assert calls["cmdstat_bzpopmin"]["calls"] == 1 and calls["cmdstat_fcall"]["calls"] == 1
