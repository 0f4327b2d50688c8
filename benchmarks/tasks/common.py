"""What every framework's handlers do, identically: count completions and record timestamps in
the private Redis named by ``BENCH_REDIS``, one INCR per job.

Keys (the database is flushed between steps):

* ``bench:done``    completions (INCR);
* ``bench:target``  completion count whose time the driver wants (set by the driver);
* ``bench:times``   hash: ``first`` and ``target`` -> time.time() of that completion;
* ``bench:starts``  list of "pid job-ref time" written at handler start (latency, crash tests);
* ``bench:lat``     list of seconds from the producer's timestamp to handler start;
* ``bench:busy``    CPU seconds CPU-bound handlers spent on their work (INCRBYFLOAT).
"""

from __future__ import annotations

import os
import time

import redis

DONE = "bench:done"
TARGET = "bench:target"
TIMES = "bench:times"
STARTS = "bench:starts"
LATENCY = "bench:lat"
BUSY = "bench:busy"

_client: redis.Redis | None = None
_pid = 0
_target: int | None = None


def client() -> redis.Redis:
    """This process's connection (a forked child opens its own)."""
    global _client, _pid, _target
    if _client is None or _pid != os.getpid():
        _client = redis.Redis.from_url(os.environ["BENCH_REDIS"])
        _pid, _target = os.getpid(), None
    return _client


def done(busy: float = 0.0) -> None:
    """Count a completion: one INCR, the cheapest round trip Redis offers, so that the harness
    weighs as little as possible on every framework's figure. The first and the target
    completion also stamp their time; CPU-bound jobs add their busy time."""
    global _target
    finished = repr(time.time())
    r = client()
    count = r.incr(DONE)
    if _target is None:  # set by the driver before the workers start, read once per process
        _target = int(r.get(TARGET) or -1)
    if count == 1:
        r.hset(TIMES, "first", finished)
    if count == _target:
        r.hset(TIMES, "target", finished)
    if busy:
        r.incrbyfloat(BUSY, busy)


def cpu_work(loops: int) -> int:
    """Pure-Python work, calibrated by the driver to about 20 ms."""
    total = 0
    for i in range(loops):
        total += i * i % 7
    return total


def run(data: dict) -> None:
    """The one handler body: ``data["kind"]`` is noop, cpu, latency or sleep."""
    kind = data.get("kind", "noop")
    if kind == "latency":
        started = time.time()
        client().rpush(LATENCY, repr(started - data["sent"]))
        return
    if kind == "cpu":
        started = time.thread_time()  # CPU time: time stolen by other processes is not work
        cpu_work(data["loops"])
        done(time.thread_time() - started)
        return
    if kind == "sleep":
        client().rpush(STARTS, f"{os.getpid()} {data.get('ref', '')} {time.time()!r}")
        time.sleep(data["seconds"])
    done()
