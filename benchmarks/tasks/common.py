"""What every framework's handlers do, identically: count completions and record timestamps in
the private Redis named by ``BENCH_REDIS``, one round trip per job.

Keys (the database is flushed between steps):

* ``bench:done``    completions (INCR by the ``done`` script);
* ``bench:target``  completion count whose time the driver wants (set by the driver);
* ``bench:times``   hash: ``first`` and ``target`` -> time.time() of that completion;
* ``bench:starts``  list of "pid job-ref time" written at handler start (latency, crash tests);
* ``bench:lat``     list of seconds from the producer's timestamp to handler start;
* ``bench:busy``    CPU seconds CPU-bound handlers spent on their work (INCRBYFLOAT by ``done``).
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

# One round trip: count the completion and stamp the first one and the target one.
_DONE_LUA = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('HSET', KEYS[3], 'first', ARGV[1]) end
if n == tonumber(redis.call('GET', KEYS[2]) or '-1') then redis.call('HSET', KEYS[3], 'target', ARGV[1]) end
if ARGV[2] ~= '0' then redis.call('INCRBYFLOAT', KEYS[4], ARGV[2]) end
return n
"""

_client: redis.Redis | None = None
_pid = 0
_done_script = None


def client() -> redis.Redis:
    """This process's connection (a forked child opens its own)."""
    global _client, _pid, _done_script
    if _client is None or _pid != os.getpid():
        _client = redis.Redis.from_url(os.environ["BENCH_REDIS"])
        _done_script = _client.register_script(_DONE_LUA)
        _pid = os.getpid()
    return _client


def done(busy: float = 0.0) -> None:
    client()
    assert _done_script is not None
    _done_script(keys=[DONE, TARGET, TIMES, BUSY], args=[repr(time.time()), repr(busy)])


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
