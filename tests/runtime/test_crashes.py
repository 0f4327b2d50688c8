"""What dies stays inside one child: kill -9, os._exit, segfaults, memory blow-ups, hangs, bad input."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable

import pytest

from oqron import Container, queue
from oqron.runtime.nodes import live_nodes
from tests.support.master import MasterProcess, alive
from tests.support.records import corrupt_record, raw_status
from tests.support.wait import wait_for

CRASHERS = """
import ctypes, resource, signal as _signal

retry_fast = Retries(max=1, strategy="fixed", base_delay=0)

@queue("slow", retries=retry_fast).handler
def slow(ctx):
    ran(ctx)
    if ctx.attempt == 1:
        time.sleep(30)
    return "second attempt"

@queue("quick").handler
def quick(ctx):
    return ran(ctx, ctx.data)

@queue("exit", retries=retry_fast).handler
def exits(ctx):
    ran(ctx)
    os._exit(3)

@queue("segfault", retries=retry_fast).handler
def segfault(ctx):
    ran(ctx)
    ctypes.string_at(0)

@queue("memory", retries=retry_fast).handler
def memory(ctx):
    ran(ctx)
    limit = 512 * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    while True:  # C code that does not check its allocations, as extension modules can
        block = libc.malloc(64 * 1024 * 1024)
        ctypes.memset(block, 1, 64 * 1024 * 1024)

@queue("pyalloc", retries=Retries(max=0)).handler
def pyalloc(ctx):
    limit = 512 * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    hoard = []
    while True:
        hoard.append(bytearray(32 * 1024 * 1024))

@queue("sleeper", timeout=1.0, retries=Retries(max=0)).handler
def sleeper(ctx):
    time.sleep(1000)

@queue("deaf", timeout=1.0, retries=Retries(max=0)).handler
def deaf(ctx):
    _signal.pthread_sigmask(_signal.SIG_BLOCK, {_signal.SIGABRT, _signal.SIGTERM})
    time.sleep(1000)  # stands for C code that never returns to the interpreter

@queue("soft", soft_timeout=0.3).handler
def soft(ctx):
    from oqron import JobTimeout
    try:
        time.sleep(30)
    except JobTimeout:
        return "cleaned up"

@queue("base", retries=Retries(max=0)).handler
def base(ctx):
    raise KeyboardInterrupt("not a real ctrl-c")
"""


@pytest.fixture
def master(kit: Container, spawn_master: Callable[..., MasterProcess]) -> MasterProcess:
    process = spawn_master(CRASHERS, "--workers", "3", "--lease-ttl", "5")
    process.wait_workers(3)
    return process


@pytest.mark.timeout(60)
def test_kill_9_mid_job_requeues_at_once(master: MasterProcess, kit: Container,
                                         counter: Callable[[], dict[str, int]]) -> None:
    job = queue("slow").add({})
    others = queue("quick").add_bulk([{"n": i} for i in range(20)])
    victim = master.busy_worker(job.id)
    wait_for(lambda: counter().get(job.id) == 1, 10, interval=0.002, message="handler started")
    killed = time.monotonic()
    os.kill(victim, signal.SIGKILL)
    requeued = wait_for(
        lambda: (job.refresh().attempts_made == 2 or job.status in ("waiting", "delayed"))
        and time.monotonic(),
        5, interval=0.001, message="job back in its queue",
    )
    assert requeued - killed < 0.2, f"requeued after {requeued - killed:.3f} s"
    assert job.wait(timeout=20) == "second attempt"
    assert job.error["type"] == "WorkerCrashed" and "SIGKILL" in job.error["message"]
    assert "out of memory?" in job.error["message"]
    wait_for(lambda: len(master.workers()) == 3 and victim not in master.children(), 10,
             message="a replacement worker")
    for other in others:
        assert other.wait(timeout=20) == other.data
    assert counter()[job.id] == 2


@pytest.mark.timeout(90)
@pytest.mark.parametrize(
    ("queue_name", "cause"),
    [("exit", "exited with code 3"), ("segfault", "killed by SIGSEGV"), ("memory", "killed by SIGSEGV")],
)
def test_dying_handlers_fail_with_worker_crashed(
    master: MasterProcess, kit: Container, counter: Callable[[], dict[str, int]], queue_name: str, cause: str
) -> None:
    job = queue(queue_name).add({})
    bystanders = queue("quick").add_bulk([{"n": i} for i in range(30)])
    with pytest.raises(Exception, match="WorkerCrashed"):
        job.wait(timeout=40)
    job.refresh()
    assert job.status == "failed" and job.attempts_made == 2
    assert cause in job.error["message"], job.error
    assert counter()[job.id] == 2
    assert [b.wait(timeout=20) for b in bystanders] == [b.data for b in bystanders]
    assert alive(master.pid)
    master.wait_workers(3)


@pytest.mark.timeout(60)
def test_python_memory_error_is_an_ordinary_failure(master: MasterProcess, kit: Container) -> None:
    job = queue("pyalloc").add({})
    with pytest.raises(Exception, match="MemoryError"):
        job.wait(timeout=30)
    assert queue("quick").add({"ok": 1}).wait(timeout=20) == {"ok": 1}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("queue_name", ["sleeper", "deaf"])
def test_hard_timeout_ends_stuck_jobs(master: MasterProcess, kit: Container, queue_name: str) -> None:
    job = queue(queue_name).add({})
    started = time.monotonic()
    with pytest.raises(Exception, match="JobTimeout"):
        job.wait(timeout=20)
    assert time.monotonic() - started < 10
    job.refresh()
    assert job.status == "failed" and "hard timeout" in job.error["message"]
    master.wait_workers(3)
    assert queue("quick").add({"after": 1}).wait(timeout=20) == {"after": 1}


def test_soft_timeout_can_be_caught(master: MasterProcess, kit: Container) -> None:
    assert queue("soft").add({}).wait(timeout=20) == "cleaned up"


def test_base_exception_fails_the_job_and_the_child_serves_on(master: MasterProcess, kit: Container) -> None:
    workers = set(master.workers())
    job = queue("base").add({})
    with pytest.raises(Exception, match="KeyboardInterrupt"):
        job.wait(timeout=20)
    assert queue("quick").add({"n": 1}).wait(timeout=20) == {"n": 1}
    assert set(master.workers()) == workers


def test_unknown_handler_fails_the_job(master: MasterProcess, kit: Container,
                                       spawn_master: Callable[..., MasterProcess]) -> None:
    orphan = queue("nobody").add({})
    other = spawn_master('queue("nobody")\nqueue("x").handler(lambda ctx: 1)\n', "--workers", "1",
                         "--queues", "nobody")
    other.wait_workers(1)
    with pytest.raises(Exception, match="UnknownHandler"):
        orphan.wait(timeout=20)
    assert orphan.attempts_made == 1
    assert queue("quick").add({"n": 2}).wait(timeout=20) == {"n": 2}


@pytest.mark.parametrize("data", ["{not json", '1,"x":2'], ids=["unparsable", "adds-a-key-when-spliced"])
def test_corrupt_record_fails_the_job(master: MasterProcess, kit: Container, data: str) -> None:
    if kit.config.storage.startswith("postgres"):
        pytest.skip("PostgreSQL validates JSONB: a record there cannot be undecodable")
    if data != "{not json" and not kit.config.storage.startswith("redis"):
        pytest.skip("fields are stored apart on Redis only")
    corrupt = queue("quick").add({"n": 1}, delay=0.5)
    corrupt_record(kit.storage, corrupt.id, data)
    wait_for(lambda: raw_status(kit.storage, corrupt.id) == "failed", 20, message="corrupt job failed")
    assert queue("quick").add({"n": 2}).wait(timeout=20) == {"n": 2}


CRASHES_WHEN_IDLE = """
import threading

queue("idle").handler(lambda ctx: None)

def _crash_soon():  # stands for a bug outside any job: the child dies while it holds nothing
    threading.Timer(0.2, lambda: os._exit(1)).start()

os.register_at_fork(after_in_child=_crash_soon)
"""


@pytest.mark.timeout(60)
def test_children_crashing_outside_jobs_are_respawned_with_backoff(
    spawn_master: Callable[..., MasterProcess],
) -> None:
    process = spawn_master(CRASHES_WHEN_IDLE, "--workers", "1")
    wait_for(lambda: process.log().count("exited with code 1") >= 3, 20, message="a few crashes")
    first = time.monotonic()
    crashes = process.log().count("exited with code 1")
    deadline = first + 4.0
    while time.monotonic() < deadline:
        assert process.process is not None and process.process.poll() is None, process.log()
        time.sleep(0.1)
    # Forking again at once would crash ~15 times in 4 s; the backoff (up to 5 s) allows a few.
    assert process.log().count("exited with code 1") - crashes <= 5, process.log()


@pytest.mark.timeout(60)
def test_job_taken_but_never_run_goes_back_without_an_attempt(
    kit: Container, spawn_master: Callable[..., MasterProcess]
) -> None:
    """A child killed between taking a job and running it (the take's reply was in flight) did
    not run it: the job goes back to waiting with its attempt refunded, not failed as a crash."""
    master = spawn_master('queue("served").handler(lambda ctx: 1)\nqueue("held")\n',
                          "--workers", "1", "--queues", "served", "--lease-ttl", "30")
    [worker] = master.wait_workers(1)
    node = wait_for(lambda: live_nodes(kit.storage), 10, message="node registered")[0]["node_id"]
    job = queue("held").add({})
    claimed = kit.lifecycle.claim(["held"], f"{node}/1/{worker}", 30.0)  # as the worker's take
    assert claimed is not None and claimed.job_id == job.id and job.refresh().status == "active"
    os.kill(worker, signal.SIGKILL)
    wait_for(lambda: job.refresh().status == "waiting", 10, message="job back to waiting")
    assert job.attempts_made == 0 and job.error is None
    assert job.timeline[-1]["reason"] == "requeued: worker 1 stopped before running it"
    assert queue("served").add({}).wait(timeout=20) == 1  # a replacement serves on
