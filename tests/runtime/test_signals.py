"""Signals to the master: warm and cold shutdown, scaling, reload, recycling, master death."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable

import pytest

from oqron import Container, queue
from tests.support.fixtures import APP_HEADER
from tests.support.master import MasterProcess, alive, title
from tests.support.wait import wait_for

TWO_SECONDS = """
@queue("work").handler
def work(ctx):
    ran(ctx)
    time.sleep(ctx.data.get("seconds", 2))
    return ctx.data.get("n")
"""


@pytest.mark.timeout(60)
def test_term_lets_running_jobs_finish_and_claims_nothing_new(
    kit: Container, spawn_master: Callable[..., MasterProcess], counter: Callable[[], dict[str, int]]
) -> None:
    master = spawn_master(TWO_SECONDS, "--workers", "4", "--graceful-timeout", "15")
    master.wait_workers(4)
    running = queue("work").add_bulk([{"n": i} for i in range(4)])
    for job in running:
        master.busy_worker(job.id)
    waiting = queue("work").add_bulk([{"n": i} for i in range(4, 10)])
    sent = time.monotonic()
    master.send(signal.SIGTERM)
    assert master.wait_exit(timeout=15) == 0
    assert time.monotonic() - sent < 15
    assert [j.refresh().status for j in running] == ["completed"] * 4
    assert [j.refresh().status for j in waiting] == ["waiting"] * 6
    assert set(counter()) == {j.id for j in running}
    assert master.children() == []


@pytest.mark.timeout(60)
def test_term_past_graceful_timeout_kills_and_requeues(
    kit: Container, spawn_master: Callable[..., MasterProcess]
) -> None:
    master = spawn_master(TWO_SECONDS, "--workers", "2", "--graceful-timeout", "1")
    master.wait_workers(2)
    jobs = queue("work").add_bulk([{"seconds": 60}, {"seconds": 60}])
    for job in jobs:
        master.busy_worker(job.id)
    master.send(signal.SIGTERM)
    assert master.wait_exit(timeout=15) == 0
    for job in jobs:
        job.refresh()
        assert job.status == "waiting" and job.attempts_made == 0
    assert kit.broker.counts("work")["waiting"] == 2


@pytest.mark.timeout(60)
def test_quit_requeues_running_jobs_at_once(
    kit: Container, spawn_master: Callable[..., MasterProcess]
) -> None:
    master = spawn_master(TWO_SECONDS, "--workers", "4")
    master.wait_workers(4)
    jobs = queue("work").add_bulk([{"seconds": 60, "n": i} for i in range(4)])
    for job in jobs:
        master.busy_worker(job.id)
    sent = time.monotonic()
    master.send(signal.SIGQUIT)
    assert master.wait_exit(timeout=10) == 0
    assert time.monotonic() - sent < 3
    assert [j.refresh().status for j in jobs] == ["waiting"] * 4
    assert all(j.attempts_made == 0 for j in jobs)
    assert kit.broker.counts("work") == {"waiting": 4, "delayed": 0, "active": 0}


def test_ttin_and_ttou_change_the_number_of_children(
    kit: Container, spawn_master: Callable[..., MasterProcess]
) -> None:
    master = spawn_master(TWO_SECONDS, "--workers", "2")
    master.wait_workers(2)
    master.send(signal.SIGTTIN)
    master.wait_workers(3)
    master.send(signal.SIGTTIN)
    master.wait_workers(4)
    master.send(signal.SIGTTOU)
    master.wait_workers(3)
    assert title(master.pid).endswith(("3 workers", "3 workers leader"))


@pytest.mark.timeout(120)
def test_hup_swaps_in_new_code_without_losing_or_repeating_jobs(
    kit: Container, spawn_master: Callable[..., MasterProcess], counter: Callable[[], dict[str, int]]
) -> None:
    version = """
@queue("versioned").handler
def versioned(ctx):
    ran(ctx)
    time.sleep(0.01)
    return "{}"
"""
    master = spawn_master(version.format("v1"), "--workers", "2")
    master.wait_workers(2)
    first = queue("versioned").add_bulk([{} for _ in range(150)])
    master.write_app(APP_HEADER + version.format("v2"))
    master.send(signal.SIGHUP)
    second = queue("versioned").add_bulk([{} for _ in range(150)])
    wait_for(lambda: queue("versioned").count("completed") == 300, 60, interval=0.1, message="300 done")
    runs = counter()
    assert len(runs) == 300 and set(runs.values()) == {1}
    results = [j.refresh().return_value for j in first + second]
    assert "v2" in results
    late = queue("versioned").add({})
    assert late.wait(timeout=20) == "v2"
    master.wait_workers(2)


@pytest.mark.timeout(120)
def test_max_jobs_per_child_recycles_without_losing_jobs(
    kit: Container, spawn_master: Callable[..., MasterProcess], counter: Callable[[], dict[str, int]]
) -> None:
    master = spawn_master("""
@queue("recycled").handler
def recycled(ctx):
    ran(ctx)
    return os.getpid()
""", "--workers", "2", "--max-jobs-per-child", "10")
    master.wait_workers(2)
    jobs = queue("recycled").add_bulk([{} for _ in range(500)])
    wait_for(lambda: queue("recycled").count("completed") == 500, 90, interval=0.2, message="500 done")
    runs = counter()
    assert len(runs) == 500 and set(runs.values()) == {1}
    pids = [j.refresh().return_value for j in jobs]
    assert len(set(pids)) >= 50
    assert max(pids.count(p) for p in set(pids)) <= 10


@pytest.mark.timeout(60)
def test_children_die_with_the_master_and_their_jobs_are_recoverable(
    kit: Container, spawn_master: Callable[..., MasterProcess]
) -> None:
    master = spawn_master(TWO_SECONDS, "--workers", "2", "--lease-ttl", "2")
    master.wait_workers(2)
    jobs = queue("work").add_bulk([{"seconds": 60}, {"seconds": 60}])
    children = [master.busy_worker(j.id) for j in jobs]
    os.kill(master.pid, signal.SIGKILL)
    killed = time.monotonic()
    wait_for(lambda: not any(alive(pid) for pid in children), 2, interval=0.01,
             message="children gone after the master died")
    assert time.monotonic() - killed < 2
    expired = wait_for(
        lambda: len(kit.broker.expired_leases("work")) == 2 and kit.broker.expired_leases("work"),
        10, message="both leases expire",
    )
    assert {lease.job_id for lease in expired} == {j.id for j in jobs}
    assert all(j.refresh().status in ("waiting", "active") for j in jobs)  # stall recovery's turn
