"""Whole nodes dying under load, the node registry, and environment isolation."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable

import pytest

from oqron import Container, Job, OqronKit, define_config, queue
from oqron.runtime.nodes import live_nodes
from tests.support.master import MasterProcess
from tests.support.wait import wait_for

WORK_APP = """
@queue("work").handler
def work(ctx):
    ran(ctx)
    time.sleep(ctx.data["seconds"])
    return os.environ.get("OQRON_ENVIRONMENT", "development")
"""
LEASE_TTL = 3.0


@pytest.mark.timeout(120)
def test_dead_node_jobs_rerun_within_lease_ttl_plus_two_seconds(
    kit: Container, spawn_master: Callable[..., MasterProcess], counter: Callable[[], dict[str, int]]
) -> None:
    # B has room for A's jobs once they are recovered: the test measures recovery, not backlog.
    node_a = spawn_master(WORK_APP, "--workers", "2", "--lease-ttl", str(LEASE_TTL))
    node_b = spawn_master(WORK_APP, "--workers", "6", "--lease-ttl", str(LEASE_TTL))
    node_a.wait_workers(2)
    node_b.wait_workers(6)
    jobs = queue("work").add_bulk([{"seconds": 2} for _ in range(8)])
    wait_for(lambda: len(node_a.workers("busy")) == 2, 20, interval=0.005, message="node A busy")

    def held_by_a() -> list[Job]:
        pids = {str(p) for p in node_a.children()}
        runs = counter()
        return [j for j in jobs if j.refresh().status == "active" and j.id in runs
                and str(j.record.get("worker_id")).rsplit("/", 1)[-1] in pids]

    held = wait_for(lambda: len(held_by_a()) == 2 and held_by_a(), 10, interval=0.005,
                    message="node A's handlers running")
    os.killpg(node_a.pid, signal.SIGKILL)
    killed = time.monotonic()

    wait_for(lambda: all(j.refresh().status == "completed" for j in jobs), 60, interval=0.1,
             message="all jobs completed")
    for job in held:
        rerun_started = job.refresh().started_at
        delay = rerun_started - (time.time() - (time.monotonic() - killed))
        assert job.attempts_made >= 2 and job.record["stalled_count"] >= 1
        assert delay <= LEASE_TTL + 2, f"job {job.id} reran {delay:.2f} s after the node died"
    extra = sum(counter().values()) - len(jobs)
    assert extra <= len(held)
    assert len(live_nodes(kit.storage)) >= 1


def test_node_registry(kit: Container, spawn_master: Callable[..., MasterProcess]) -> None:
    masters = [spawn_master(WORK_APP, "--workers", str(n)) for n in (1, 2)]
    nodes = wait_for(lambda: len(live_nodes(kit.storage)) == 2 and live_nodes(kit.storage), 10,
                     message="two nodes registered")
    assert sorted(n["workers"] for n in nodes) == [1, 2]
    assert {n["pid"] for n in nodes} == {m.pid for m in masters}
    assert sum(1 for n in nodes if n["leader_shards"] == [0]) <= 1
    masters[0].send(signal.SIGTERM)
    masters[0].wait_exit(10)
    remaining = wait_for(lambda: len(live_nodes(kit.storage)) == 1 and live_nodes(kit.storage), 10,
                         message="the stopped node left the registry")
    assert remaining[0]["pid"] == masters[1].pid


@pytest.mark.timeout(120)
def test_environments_never_run_each_others_jobs(
    urls: dict[str, str], project: str, spawn_master: Callable[..., MasterProcess],
    counter: Callable[[], dict[str, int]],
) -> None:
    if urls["storage"] != urls["broker"]:
        pytest.skip("run once, on the shared-Redis set")
    for environment in ("production", "development"):
        spawn_master(WORK_APP, "--workers", "2", env={"OQRON_ENVIRONMENT": environment})
    added: dict[str, list[Job]] = {}
    work = queue("work")
    for environment in ("production", "development"):
        OqronKit.init(define_config(project=project, environment=environment, **urls))
        added[environment] = work.add_bulk([{"seconds": 0} for _ in range(1000)])
    for environment, jobs in added.items():
        OqronKit.init(define_config(project=project, environment=environment, **urls))
        wait_for(lambda: work.count("completed") == 1000, 60, interval=0.2,
                 message=f"{environment} jobs done")
        assert {j.refresh().return_value for j in jobs[::50]} == {environment}
        assert all(j.record["environment"] == environment for j in jobs[::50])
    runs = counter()
    assert len(runs) == 2000 and set(runs.values()) == {1}
