"""oqron alone, without the benchmark's per-job INCR: a handler that returns at once, 2 children,
with batches (``--prefetch 8``, the default) and without (``--prefetch 1``).

    .venv/bin/python -m benchmarks.empty_handler [--jobs 40000] [--rounds 2]

Completions are counted by polling oqron's own count of completed jobs every 5 ms; the rate is
taken between the first poll that sees a completion and the last job. Prints one line per run.
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


def drain(url: str, jobs: int, prefetch: int, log_dir: str) -> float:
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
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline:
            done = kit.storage.count_jobs("empty", "completed")
            if done and first is None:
                first = (time.perf_counter(), done)
            if done >= jobs:
                assert first is not None
                return (jobs - first[1]) / (time.perf_counter() - first[0])
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
    args = parser.parse_args()
    server = PrivateRedis().start()
    log_dir = tempfile.mkdtemp(prefix="oqron-empty-")
    rates: dict[int, list[float]] = {8: [], 1: []}
    try:
        for _ in range(args.rounds):
            for prefetch in rates:
                server.flush()
                rate = drain(server.url, args.jobs, prefetch, log_dir)
                rates[prefetch].append(rate)
                print(f"prefetch {prefetch}: {rate:,.0f} jobs/s", flush=True)
    finally:
        server.stop()
    for prefetch, values in rates.items():
        print(f"prefetch {prefetch}: median {statistics.median(values):,.0f} jobs/s over {len(values)} runs")


if __name__ == "__main__":
    sys.exit(main())
