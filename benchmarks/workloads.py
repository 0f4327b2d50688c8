"""The workloads every framework runs, written once against the ``Driver`` interface.

Each function gets a driver, a Redis client on the private server (flushed before the step) and
its parameters, and returns a dict of figures. Completions are counted by the handlers with one
Lua call on that Redis (``tasks/common.py``), the same for every framework.
"""

from __future__ import annotations

import os
import statistics
import time
from typing import Any

import redis

from .frameworks import Driver
from .procs import Worker, wait_for
from .tasks import common

NOOP = {"kind": "noop"}


def start_worker(driver: Driver, processes: int, log_dir: str) -> Worker:
    log = os.path.join(log_dir, f"{driver.name}-worker.log")
    return Worker(driver.worker_argv(processes), driver.worker_env(), log).start()


def wait_done(r: redis.Redis, count: int, timeout: float, worker: Worker | None = None) -> None:
    def reached() -> bool:
        if worker is not None and not worker.running():
            raise RuntimeError(f"worker exited early:\n{worker.log_tail()}")
        return int(r.get(common.DONE) or 0) >= count

    wait_for(reached, timeout, interval=0.02, what=f"{count} completions (have {r.get(common.DONE)})")


def times(r: redis.Redis) -> tuple[float, float]:
    stamps = r.hgetall(common.TIMES)
    return float(stamps[b"first"]), float(stamps[b"target"])


def enqueue_one(driver: Driver, r: redis.Redis, p: dict[str, Any]) -> dict[str, Any]:
    n = p["n"]
    for _ in range(min(100, n)):  # warm-up: connections, script loading
        driver.enqueue_one(NOOP)
    started = time.perf_counter()
    for _ in range(n):
        driver.enqueue_one(NOOP)
    elapsed = time.perf_counter() - started
    return {"jobs": n, "seconds": elapsed, "jobs_s": n / elapsed}


def enqueue_bulk(driver: Driver, r: redis.Redis, p: dict[str, Any]) -> dict[str, Any]:
    n = min(p["n"], driver.max_bulk_jobs or p["n"])
    driver.enqueue_bulk([dict(NOOP) for _ in range(min(100, n))])  # warm-up
    items = [dict(NOOP) for _ in range(n)]
    started = time.perf_counter()
    driver.enqueue_bulk(items)
    elapsed = time.perf_counter() - started
    return {"jobs": n, "seconds": elapsed, "jobs_s": n / elapsed, "how": driver.bulk_note}


def run_worker(driver: Driver, r: redis.Redis, target: int, p: dict[str, Any]) -> tuple[float, float, float]:
    """Start the worker on what is queued, stop it after ``target`` completions; returns when it
    started and the times of the first and the target completion."""
    worker = start_worker(driver, p.get("processes", 2), p["log_dir"])
    started = time.time()
    try:
        wait_done(r, target, p.get("timeout", 300), worker)
    finally:
        worker.stop()
    first, last = times(r)
    return started, first, last


def _drain(driver: Driver, r: redis.Redis, n: int, items: list[dict[str, Any]], p: dict[str, Any],
           target: int | None = None) -> dict[str, Any]:
    """Enqueue ``items`` with no worker, start the worker, wait for ``target`` completions."""
    target = target or n
    r.set(common.TARGET, target)
    chunk = p.get("chunk", 20_000)
    added = time.perf_counter()
    for start in range(0, len(items), chunk):
        driver.enqueue_bulk(items[start:start + chunk])
    enqueue_seconds = time.perf_counter() - added
    started, first, last = run_worker(driver, r, target, p)
    return {"jobs": target, "queued": len(items), "enqueue_seconds": enqueue_seconds,
            "first_to_last_s": last - first, "start_to_last_s": last - started,
            "startup_s": first - started, "first": first, "last": last, "started": started}


def e2e(driver: Driver, r: redis.Redis, p: dict[str, Any]) -> dict[str, Any]:
    n = min(p["n"], driver.max_drain_jobs or p["n"])
    out = _drain(driver, r, n, [dict(NOOP) for _ in range(n)], p)
    out["jobs_s"] = (n - 1) / out["first_to_last_s"]
    out["jobs_s_from_start"] = n / out["start_to_last_s"]
    return out


def warm_up(seconds: float = 0.5) -> None:
    """Spin first: the first runs of the loop are ~30 % slower here (CPU clock, caches)."""
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        common.cpu_work(10_000)


def calibrate(target_s: float = 0.02) -> int:
    """Loop count of ``cpu_work`` that takes about ``target_s`` in this interpreter."""
    warm_up()
    loops = 10_000
    while True:
        started = time.perf_counter()
        common.cpu_work(loops)
        elapsed = time.perf_counter() - started
        if elapsed > 0.005:
            return int(loops * target_s / elapsed)
        loops *= 4


def single_job_seconds(loops: int, repeat: int = 15) -> float:
    warm_up()
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        common.cpu_work(loops)
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def _bare_worker(jobs: int, loops: int, out: Any) -> None:
    busy, ends = 0.0, []
    for _ in range(jobs):
        started = time.thread_time()
        common.cpu_work(loops)
        busy += time.thread_time() - started
        ends.append(time.time())
    out.put((busy, ends))


def bare_efficiency(n: int, loops: int, processes: int) -> float:
    """The same jobs in plain forked processes, no framework, measured like the workers: what
    this machine allows (its steal and its other processes)."""
    import multiprocessing

    context = multiprocessing.get_context("fork")
    out = context.Queue()
    workers = [context.Process(target=_bare_worker, args=(n // processes, loops, out))
               for _ in range(processes)]
    for worker in workers:
        worker.start()
    results = [out.get() for _ in workers]
    for worker in workers:
        worker.join()
    busy = sum(b for b, _ in results)
    ends = sorted(t for _, stamps in results for t in stamps)
    wall = ends[-1] - ends[0] + busy / len(ends)
    return busy / processes / wall


def cpu(driver: Driver, r: redis.Redis, p: dict[str, Any]) -> dict[str, Any]:
    n, loops, processes = p["n"], p["loops"], p.get("processes", 2)
    single = single_job_seconds(loops)
    bare = bare_efficiency(n, loops, processes)
    out = _drain(driver, r, n, [{"kind": "cpu", "loops": loops} for _ in range(n)], p)
    # The VM's CPU speed drifts between the calibration here and the workers' runs (seen: the
    # same loop 15-30 ms within a minute), so the headline compares the CPU time handlers spent
    # on their work (measured in the handler) with the wall time the pool took: what is lost
    # is the framework's overhead, its idle gaps and CPU taken by its other processes.
    busy = float(r.get(common.BUSY) or 0.0)
    wall = out["first_to_last_s"] + busy / n
    ideal = n * single / processes
    out.update(single_job_s=single, loops=loops, busy_s=busy, wall_s=wall,
               efficiency=busy / processes / wall,
               efficiency_vs_calibration=ideal / wall, bare_efficiency=bare,
               efficiency_from_start=busy / processes / out["start_to_last_s"])
    return out


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def latency(driver: Driver, r: redis.Redis, p: dict[str, Any]) -> dict[str, Any]:
    n, gap = p["n"], p.get("gap", 0.01)
    worker = start_worker(driver, p.get("processes", 2), p["log_dir"])
    try:
        for _ in range(4):  # the worker is up and idle once these are done
            driver.enqueue_one(NOOP)
        wait_done(r, 4, 60, worker)
        time.sleep(1.0)
        begin = time.perf_counter()
        for i in range(n):
            driver.enqueue_one({"kind": "latency", "sent": time.time()})
            pause = begin + (i + 1) * gap - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
        wait_for(lambda: r.llen(common.LATENCY) >= n, p.get("timeout", 60), interval=0.02,
                 what=f"{n} latency samples (have {r.llen(common.LATENCY)})")
    finally:
        worker.stop()
    samples = [float(v) * 1000 for v in r.lrange(common.LATENCY, 0, -1)]
    return {"jobs": n, "gap_ms": gap * 1000,
            "p50_ms": percentile(samples, 50), "p95_ms": percentile(samples, 95),
            "p99_ms": percentile(samples, 99), "max_ms": max(samples),
            "mean_ms": statistics.fmean(samples)}


WORKLOADS = {
    "enqueue_one": enqueue_one,
    "enqueue_bulk": enqueue_bulk,
    "e2e": e2e,
    "cpu": cpu,
    "latency": latency,
}
