"""oqron alone, without the benchmark's per-job counting: a handler that returns at once, 2 children,
with batches (``--prefetch 16``, the default) and without (``--prefetch 1``).

    .venv/bin/python -m benchmarks.empty_handler [--jobs 40000] [--rounds 2] [--prefetch 16,1]

Completions are counted by polling oqron's own count of completed jobs every 5 ms; the rate is
taken between the first poll that sees a completion and the last job. Prints one line per run,
with the CPU time per job over the same span of Redis, the master and the children (read from
``/proc``), to show where the time goes.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

from oqron import OqronKit, define_config

from .frameworks import ROOT, venv_bin
from .procs import Worker
from .services import PrivateRedis

PROJECT = "bench-empty"


def cpu_seconds(pids: list[int]) -> dict[int, float]:
    """User + system CPU seconds of each live pid (Linux ``/proc``)."""
    ticks = os.sysconf("SC_CLK_TCK")
    out = {}
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[pid] = (int(fields[11]) + int(fields[12])) / ticks
    return out


def group_pids(pgid: int) -> list[int]:
    """Pids of the process group ``pgid`` (the master and its children)."""
    pids = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.getpgid(int(name)) == pgid:
                    pids.append(int(name))
            except OSError:
                pass
    return pids


def cpu_split(server_pid: int, worker_pid: int) -> dict[str, float]:
    """CPU seconds so far of Redis, the master and its children together."""
    seconds = cpu_seconds([server_pid, *group_pids(worker_pid)])
    redis_s = seconds.pop(server_pid, 0.0)
    master_s = seconds.pop(worker_pid, 0.0)
    return {"redis": redis_s, "master": master_s, "children": sum(seconds.values())}


def drain(url: str, jobs: int, prefetch: int, log_dir: str, server_pid: int) -> float:
    kit = OqronKit.init(define_config(project=PROJECT, storage=url, broker=url, lock=url))
    from .tasks.oqron_tasks import empty

    for start in range(0, jobs, 20_000):
        empty.add_bulk([{}] * min(20_000, jobs - start))
    argv = [venv_bin("oqron-master"), "--app", "benchmarks.tasks.oqron_tasks", "--queues", "empty",
            "--workers", "2", "--prefetch", str(prefetch), "--storage", url, "--broker", url,
            "--lock", url, "--project", PROJECT, "--log-level", "WARNING"]
    env = {**os.environ, "PYTHONPATH": ROOT, "BENCH_REDIS": url}
    worker = Worker(argv, env, os.path.join(log_dir, f"empty-{prefetch}.log")).start()
    first: tuple[float, int] | None = None
    before: dict[str, float] = {}
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline:
            done = kit.storage.count_jobs("empty", "completed")
            if done and first is None:
                first, before = (time.perf_counter(), done), cpu_split(server_pid, worker.pid)
            if done >= jobs:
                assert first is not None
                rate = (jobs - first[1]) / (time.perf_counter() - first[0])
                after = cpu_split(server_pid, worker.pid)
                print("  CPU µs per job: " + ", ".join(
                    f"{k} {(after[k] - before[k]) / (jobs - first[1]) * 1e6:.0f}" for k in after))
                return rate
            if not worker.running():
                raise RuntimeError(f"oqron-master exited:\n{worker.log_tail()}")
            time.sleep(0.005)
        raise TimeoutError(f"{jobs} jobs not done in 300 s")
    finally:
        worker.stop()
        OqronKit.stop()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.empty_handler")
    parser.add_argument("--jobs", type=int, default=40_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--prefetch", default="16,1", help="prefetch values to compare, e.g. 8,16,1")
    args = parser.parse_args()
    server = PrivateRedis().start()
    log_dir = tempfile.mkdtemp(prefix="oqron-empty-")
    rates: dict[int, list[float]] = {int(value): [] for value in args.prefetch.split(",")}
    try:
        for _ in range(args.rounds):
            for prefetch in rates:
                server.flush()
                rate = drain(server.url, args.jobs, prefetch, log_dir, server.process.pid)
                rates[prefetch].append(rate)
                print(f"prefetch {prefetch}: {rate:,.0f} jobs/s", flush=True)
    finally:
        server.stop()
    for prefetch, values in rates.items():
        print(f"prefetch {prefetch}: median {statistics.median(values):,.0f} jobs/s over {len(values)} runs")


if __name__ == "__main__":
    sys.exit(main())
