"""What every framework's handlers do, identically: count completions and record timestamps in
the private Redis named by ``BENCH_REDIS``.

Keys (the database is flushed between steps):

* ``bench:done``    completions (counted by a small script, see ``done``);
* ``bench:target``  completion count whose time the driver wants (set by the driver);
* ``bench:times``   hash: ``first`` and ``target`` -> Redis server time of that completion;
* ``bench:starts``  list of "pid job-ref time" written at handler start (latency, crash tests);
* ``bench:lat``     list of seconds from the producer's timestamp to handler start;
* ``bench:busy``    CPU seconds CPU-bound handlers spent on their work (INCRBYFLOAT).
"""

from __future__ import annotations

import os
import socket
import time
from urllib.parse import urlparse

import redis

DONE = "bench:done"
TARGET = "bench:target"
TIMES = "bench:times"
STARTS = "bench:starts"
LATENCY = "bench:lat"
BUSY = "bench:busy"

# Counts a completion and stamps the first and the target one with the server's clock, so the
# handler need not wait for a reply (the stamp is the time the count landed).
COUNT_SCRIPT = """
local n = redis.call('INCR', KEYS[1])
if n == 1 or n == tonumber(redis.call('GET', KEYS[3]) or '-1') then
  local t = redis.call('TIME')
  redis.call('HSET', KEYS[2], n == 1 and 'first' or 'target', t[1] .. '.' .. string.format('%06d', t[2]))
end
if ARGV[1] ~= '0' then redis.call('INCRBYFLOAT', KEYS[4], ARGV[1]) end
return n
"""
DRAIN_EVERY = 64  # completions between two reads of the replies nobody waits for

_client: redis.Redis | None = None
_pid = 0
_counter: socket.socket | None = None
_counter_pid = 0
_sha = b""
_sent = 0


def client() -> redis.Redis:
    """This process's connection (a forked child opens its own)."""
    global _client, _pid
    if _client is None or _pid != os.getpid():
        _client = redis.Redis.from_url(os.environ["BENCH_REDIS"])
        _pid = os.getpid()
    return _client


def _command(*parts: bytes) -> bytes:
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        out.append(b"$%d\r\n%s\r\n" % (len(part), part))
    return b"".join(out)


def _counter_socket() -> socket.socket:
    """This process's raw connection for counting (a forked child opens its own)."""
    global _counter, _counter_pid, _sha
    if _counter is None or _counter_pid != os.getpid():
        _sha = client().script_load(COUNT_SCRIPT).encode()
        url = urlparse(os.environ["BENCH_REDIS"])
        _counter = socket.create_connection((url.hostname or "127.0.0.1", url.port or 6379))
        _counter.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        _counter_pid = os.getpid()
    return _counter


def done(busy: float = 0.0) -> None:
    """Count a completion without waiting for the reply: one write of a short script call, the
    same for every framework, so that the harness weighs as little as possible on each figure
    (an INCR waited for costs a client about as much CPU as a whole job costs the fastest
    peer). Replies are read and dropped every ``DRAIN_EVERY`` completions."""
    global _sent
    sock = _counter_socket()
    sock.sendall(_command(b"EVALSHA", _sha, b"4", DONE.encode(), TIMES.encode(), TARGET.encode(),
                          BUSY.encode(), repr(busy).encode() if busy else b"0"))
    _sent += 1
    if _sent % DRAIN_EVERY == 0:
        try:
            while sock.recv(65536, socket.MSG_DONTWAIT):
                pass
        except BlockingIOError:
            pass


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
