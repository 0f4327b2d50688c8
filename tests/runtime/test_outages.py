"""The backend goes away for 10 s while a master runs, then comes back on the same port with its
data: children and master ride it out (no crash, no respawn loop, no traceback per retry) and
every job still ends completed. Jobs that were running during the outage may run again
(at-least-once); the others run exactly once.

Each scenario has its own server, so stopping it disturbs no other test: a durable private
redis-server, and a private PostgreSQL cluster (the machine's server must stay up).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from oqron import Container, queue
from tests.support.master import MasterProcess
from tests.support.pg_cluster import PgCluster, find_bin_dir
from tests.support.redis_server import RedisServer
from tests.support.wait import wait_for

OUTAGE = 10.0
APP = """
@queue("quick").handler
def quick(ctx):
    return ran(ctx, ctx.data)

@queue("slow").handler
def slow(ctx):
    ran(ctx)
    time.sleep(ctx.data["sleep"])
    return "slept"
"""


@dataclass
class Backend:
    """The URLs a scenario's master uses, and how to take the server under them away."""

    urls: dict[str, str]
    stop: Callable[[], None]
    start: Callable[[], object]


@pytest.fixture(params=["redis", "postgres", "hybrid"])
def backend(request: pytest.FixtureRequest, redis_url: str) -> Iterator[Backend]:
    """``redis``: all three on a private Redis that goes down. ``postgres``: all three on a
    private PostgreSQL that goes down. ``hybrid``: PostgreSQL storage (down) with the Redis
    broker and lock of the session (up)."""
    if request.param == "redis":
        server = RedisServer(durable=True).start()
        urls = dict.fromkeys(("storage", "broker", "lock"), server.url)
        yield Backend(urls, server.kill, server.start)
        server.close()
        return
    bin_dir = find_bin_dir()
    if bin_dir is None:
        pytest.skip("initdb/pg_ctl not installed: cannot run a private PostgreSQL cluster")
    cluster = PgCluster(bin_dir).init().start()
    if request.param == "postgres":
        urls = dict.fromkeys(("storage", "broker", "lock"), cluster.url)
    else:
        urls = {"storage": cluster.url, "broker": redis_url, "lock": redis_url}
    yield Backend(urls, cluster.stop, cluster.start)
    cluster.close()


@pytest.fixture
def urls(backend: Backend) -> dict[str, str]:
    return backend.urls


def add_when_up(add: Callable[[], object], timeout: float = 10.0) -> object:
    """A producer's add right after the restart; the adapters reconnect by themselves, so it
    should succeed at once, but the server may still be finishing its start."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return add()
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@pytest.mark.timeout(90)
def test_ten_second_outage_loses_no_job_and_crashes_nothing(
    backend: Backend, kit: Container, spawn_master: Callable[..., MasterProcess],
    counter: Callable[[], dict[str, int]],
) -> None:
    master = spawn_master(APP, "--workers", "3")
    children = set(master.wait_workers(3))
    quick, slow = queue("quick"), queue("slow")

    before = [quick.add({"n": i}) for i in range(10)]
    wait_for(lambda: all(counter().get(j.id) == 1 for j in before), 20, message="the first jobs")
    # Two jobs running when the server goes and finishing while it is away, one running on past
    # its return (its lease expires meanwhile and must be renewed, not requeued), and ten jobs
    # coming due during the outage.
    straddling = [slow.add({"sleep": 2.0}) for _ in range(2)]
    long_one = slow.add({"sleep": OUTAGE + 2.0})
    for job in [*straddling, long_one]:
        master.busy_worker(job.id)
    due_later = [quick.add({"n": i}, delay=2.0) for i in range(10)]

    backend.stop()
    stopped = time.monotonic()
    wait_for(lambda: all(counter().get(j.id) for j in straddling), 10, message="the slow jobs ran")
    time.sleep(max(0.0, OUTAGE - (time.monotonic() - stopped)))  # the outage itself
    backend.start()

    after = [add_when_up(lambda i=i: quick.add({"n": 100 + i})) for i in range(10)]
    everything = [*before, *straddling, long_one, *due_later, *after]

    def all_completed() -> bool:
        return all(add_when_up(j.refresh).status == "completed" for j in everything)  # type: ignore[attr-defined]

    wait_for(all_completed, 30, interval=0.2, message=f"every job completed\n{master.log()}")
    runs = counter()
    assert all(runs[j.id] == 1 for j in [*before, long_one, *due_later, *after]), runs
    assert all(1 <= runs[j.id] <= 2 for j in straddling), runs

    assert master.process is not None and master.process.poll() is None
    assert set(master.workers()) == children, f"children were replaced\n{master.log()}"
    text = master.log_path.read_text(errors="replace")
    assert "Traceback" not in text, text
    # One warning per duty when the outage starts and one line when it ends, not one per retry.
    assert "backend unavailable, retrying with backoff" in text, text
    assert "backend reachable again" in text, text
    warnings = [line for line in text.splitlines() if " WARNING " in line]
    assert len(warnings) <= 20, f"{len(warnings)} warnings for one outage:\n{text}"
