"""What one ``Queue.add`` costs on Redis, one by one, with and without reply polling
(``reply_poll``): wall time, the producer's CPU and Redis's CPU per add, and the server time of
the add's function call (``INFO commandstats``).

    .venv/bin/python -m benchmarks.add_cost [--adds 20000] [--rounds 2] [--polls 0,0.0002]

Each round adds to a fresh private Redis, after 200 adds to warm up. Prints one line per
(round, reply_poll).
"""

from __future__ import annotations

import argparse
import resource
import time

import redis

from oqron import OqronKit, define_config, queue

from .empty_handler import cpu_seconds
from .services import PrivateRedis


def measure(url: str, adds: int, reply_poll: float) -> str:
    client = redis.Redis.from_url(url)
    client.flushall()
    OqronKit.init(define_config(project="bench-add", storage=url, broker=url, lock=url,
                                reply_poll=reply_poll))
    try:
        jobs = queue("add-cost")
        for _ in range(200):
            jobs.add({"kind": "noop"})
        client.config_resetstat()
        server_pid = int(client.info("server")["process_id"])
        server_before = cpu_seconds([server_pid])[server_pid]
        usage = resource.getrusage(resource.RUSAGE_SELF)
        started = time.perf_counter()
        for _ in range(adds):
            jobs.add({"kind": "noop"})
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_SELF)
        server = cpu_seconds([server_pid])[server_pid] - server_before
        producer = after.ru_utime + after.ru_stime - usage.ru_utime - usage.ru_stime
        fcall = client.info("commandstats")["cmdstat_fcall"]["usec_per_call"]
    finally:
        OqronKit.stop()
        client.close()
    return (f"reply_poll {reply_poll:g}: {adds / wall:,.0f} adds/s, per add {wall / adds * 1e6:.0f} us wall, "
            f"producer CPU {producer / adds * 1e6:.0f} us, Redis CPU {server / adds * 1e6:.0f} us, "
            f"job_add {fcall:.1f} us (commandstats)")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.add_cost")
    parser.add_argument("--adds", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--polls", default="0,0.0002", help="reply_poll values, comma-separated")
    args = parser.parse_args()
    polls = [float(value) for value in args.polls.split(",")]
    server = PrivateRedis().start()
    try:
        for number in range(1, args.rounds + 1):
            for reply_poll in polls:
                print(f"round {number}, {measure(server.url, args.adds, reply_poll)}", flush=True)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
