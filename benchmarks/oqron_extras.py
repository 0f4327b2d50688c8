"""Workloads only oqron runs: throughput against queue depth, crash requeue, leader failover and
dead-node recovery. Each gets the oqron driver (its container talks to the same adapters as the
masters it starts) and the private Redis, flushed before the step."""

from __future__ import annotations

import os
import signal
import statistics
import time
from typing import Any

import redis

from oqron.runtime.nodes import live_nodes

from .frameworks import Driver
from .frameworks.oqron_driver import OqronDriver
from .procs import Worker, wait_for
from .tasks import common
from .workloads import NOOP, run_worker, start_worker

#: The lock key of the leader election with one shard (oqron.runtime.leader.Leadership).
LEADER_KEY = "scheduler:leader"


def depths(driver: Driver, r: redis.Redis, p: dict[str, Any]) -> dict[str, Any]:
    """Drain ``n`` jobs from queues holding each of ``depths`` jobs, ``repeats`` times per depth,
    topping each queue back up in between. Every depth has a private Redis of its own, filled
    once, and the drains go round the depths in turn, so that the VM's drift (up to ±20 % within
    a minute here, more than the effect being measured) falls on every depth alike. The figure
    per depth is its median drain."""
    from .services import PrivateRedis

    repeats, chunk = p.get("repeats", 5), p.get("chunk", 20_000)
    servers: dict[int, PrivateRedis] = {}
    figures: dict[int, dict[str, Any]] = {}
    try:
        for depth in p["depths"]:
            servers[depth] = PrivateRedis().start()
            driver = _on(driver, servers[depth].url)
            added = time.perf_counter()
            _fill(driver, depth, chunk)
            seconds = time.perf_counter() - added
            figures[depth] = {"depth": depth, "jobs": min(p["n"], depth), "repeats": repeats,
                              "samples_jobs_s": [], "startups": [], "forgotten": 0,
                              "enqueue_seconds": seconds, "enqueue_jobs_s": depth / seconds}
        for _ in range(repeats):
            for depth, figure in figures.items():
                driver = _on(driver, servers[depth].url)
                with redis.Redis.from_url(servers[depth].url) as rd:
                    n = figure["jobs"]
                    rd.delete(common.DONE, common.TIMES)
                    rd.set(common.TARGET, n)
                    started, first, last = run_worker(driver, rd, n, p)
                    figure["samples_jobs_s"].append((n - 1) / (last - first))
                    figure["startups"].append(first - started)
                    figure["forgotten"] += _forget_completed(driver)
                    _fill(driver, int(rd.get(common.DONE) or 0), chunk)  # back to ``depth``
    finally:
        driver.close()
        for server in servers.values():
            server.stop()
    for figure in figures.values():
        figure["jobs_s"] = statistics.median(figure["samples_jobs_s"])
        figure["startup_s"] = statistics.median(figure.pop("startups"))
    return {"by_depth": {str(depth): figure for depth, figure in figures.items()}}


def _forget_completed(driver: Driver) -> int:
    """Delete the records of the jobs a drain completed (not timed), so that every drain of a
    depth runs against the same keyspace: the queue's D records. Kept, they grow the 1M
    server's keyspace past 2^20 keys during the fourth drain, and Redis's incremental rehash of
    its key table then slows the drains it spans by a fifth or more: an effect of keeping
    completed records (retention), which a queue of any depth meets when its keyspace doubles,
    not of the depth."""
    assert isinstance(driver, OqronDriver)
    return driver.kit.storage.prune_jobs(driver.queue.name, "completed", keep=0)


def _on(driver: Driver, url: str) -> Driver:
    """The same kind of driver on another Redis (oqron's container is one per process)."""
    driver.close()
    return type(driver)(url)


def _fill(driver: Driver, count: int, chunk: int) -> None:
    for start in range(0, count, chunk):
        driver.enqueue_bulk([NOOP] * min(chunk, count - start))


def _starts(r: redis.Redis) -> list[tuple[int, str, float]]:
    rows = []
    for raw in r.lrange(common.STARTS, 0, -1):
        pid, ref, stamp = raw.decode().split()
        rows.append((int(pid), ref, float(stamp)))
    return rows


def crash(driver: Driver, r: redis.Redis, p: dict[str, Any]) -> dict[str, Any]:
    """kill -9 the child running a job; time until the job's record leaves ``active`` (requeued:
    waiting, or delayed by a zero backoff) and until it runs again in the other child. The
    driver must be on the ``crashy`` queue (retries without backoff)."""
    trials = [_crash_trial(driver, r, p, f"crash{n}") for n in range(p.get("trials", 3))]
    requeued = [t[0] for t in trials]
    rerun = [t[1] for t in trials]
    return {"trials": len(trials), "ms": statistics.median(requeued), "max_ms": max(requeued),
            "rerun_ms": statistics.median(rerun), "samples_ms": requeued, "rerun_samples_ms": rerun,
            "status_seen": [t[2] for t in trials]}


def _crash_trial(driver: Driver, r: redis.Redis, p: dict[str, Any], ref: str) -> tuple[float, float, str]:
    r.flushall()
    worker = start_worker(driver, 2, p["log_dir"])
    try:
        job = driver.queue.add({"kind": "sleep", "seconds": 60, "ref": ref})
        pid = wait_for(lambda: next((s[0] for s in _starts(r) if s[1] == ref), None), 30,
                       interval=0.005, what="the job to start")
        os.kill(pid, signal.SIGKILL)
        killed = time.time()

        def left_active() -> str | None:
            if len(_starts(r)) > 1:
                return "active again"
            status = driver.queue.get_job(job.id).status
            return status if status != "active" else None

        status = wait_for(left_active, 30, interval=0.002, what="the killed child's job to be requeued")
        seen = time.time()
        wait_for(lambda: len(_starts(r)) > 1, 30, interval=0.002, what="the job to run again")
        again = _starts(r)[1][2]
    finally:
        worker.stop()
    return (min(seen, again) - killed) * 1000, (again - killed) * 1000, status


def _leader_pid(driver: Driver) -> int | None:
    owner = driver.kit.lock.owner(LEADER_KEY)
    if owner is None:
        return None
    for node in live_nodes(driver.kit.storage):
        if node["node_id"] == owner:
            return int(node["pid"])
    return None


def failover(driver: Driver, r: redis.Redis, p: dict[str, Any]) -> dict[str, Any]:
    """Two masters; kill -9 the leader (whole session); time until the lock has a new owner.
    Repeated with a fresh standby each trial."""
    masters: list[Worker] = []
    samples = []

    def spawn() -> Worker:
        worker = start_worker(driver, 1, p["log_dir"])
        masters.append(worker)
        return worker

    try:
        spawn()
        spawn()
        for _ in range(p.get("trials", 2)):
            samples.append(_failover_trial(driver, [m for m in masters if m.running()]))
            spawn()
    finally:
        for master in masters:
            master.stop()
    return {"trials": len(samples), "s": statistics.median(samples), "max_s": max(samples),
            "samples_s": samples}


def _failover_trial(driver: Driver, live: list[Worker]) -> float:
    pid = wait_for(lambda: _leader_pid(driver), 20, what="a leader")
    victim = next(m for m in live if m.pid == pid)
    old_owner = driver.kit.lock.owner(LEADER_KEY)
    wait_for(lambda: len(live_nodes(driver.kit.storage)) >= len(live), 20, what="the standby to register")
    victim.stop()
    killed = time.monotonic()
    wait_for(lambda: driver.kit.lock.owner(LEADER_KEY) not in (None, old_owner), 20, interval=0.005,
             what="a new leader")
    return time.monotonic() - killed


def dead_node(driver: Driver, r: redis.Redis, p: dict[str, Any]) -> dict[str, Any]:
    """Node A runs a long job; node B is idle; kill -9 all of A; time until B runs the job."""
    lease_ttl = p.get("lease_ttl", 10.0)
    argv_extra = ["--lease-ttl", str(lease_ttl)]
    a = Worker(driver.worker_argv(1) + argv_extra, driver.worker_env(),
               os.path.join(p["log_dir"], "oqron-node-a.log")).start()
    b = None
    try:
        driver.queue.add({"kind": "sleep", "seconds": 120, "ref": "dead-node"})
        wait_for(lambda: _starts(r), 30, interval=0.005, what="the job to start on node A")
        b = Worker(driver.worker_argv(1) + argv_extra, driver.worker_env(),
                   os.path.join(p["log_dir"], "oqron-node-b.log")).start()
        wait_for(lambda: len(live_nodes(driver.kit.storage)) >= 2, 20, what="node B to register")
        a.stop()
        killed = time.time()
        wait_for(lambda: len(_starts(r)) >= 2, lease_ttl + 40, interval=0.01,
                 what="the dead node's job to run again")
        rerun = _starts(r)[1][2] - killed
    finally:
        a.stop()
        if b is not None:
            b.stop()
    return {"lease_ttl_s": lease_ttl, "s": rerun, "target_s": lease_ttl + 2}


WORKLOADS = {"depths": depths, "crash": crash, "failover": failover, "dead_node": dead_node}
