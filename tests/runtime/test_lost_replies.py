"""A child's finish-and-take step can run on Redis and lose its reply with the connection: the
jobs it leased never reach the child. They must go back to their queue at once, uncharged,
instead of waiting out their lease and being counted as stalled."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from oqron import Container, queue
from tests.support.lossy_proxy import LossyProxy
from tests.support.master import MasterProcess
from tests.support.redis_server import RedisServer
from tests.support.wait import wait_for

APP = """
@queue("paced").handler
def paced(ctx):
    time.sleep(ctx.data["sleep"])
    return ran(ctx, ctx.data["n"])
"""
LOST = "requeued: taken by a step whose reply was lost"


@pytest.fixture
def proxy(redis_server: RedisServer) -> Iterator[LossyProxy]:
    proxy = LossyProxy(redis_server.port)
    yield proxy
    proxy.close()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("sleep", [0.08, 0.02], ids=["taken-after-the-end", "taken-one-ahead"])
def test_jobs_taken_by_a_step_whose_reply_was_lost_go_back_at_once(
    kit: Container, spawn_master: Callable[..., MasterProcess], counter: Callable[[], dict[str, int]],
    proxy: LossyProxy, sleep: float,
) -> None:
    if not kit.lifecycle.path.batches:
        pytest.skip("the combined Redis path only: elsewhere a take is its own step")
    via_proxy = proxy.url()
    spawn_master(APP, "--workers", "1", "--lease-ttl", "30",
                 env={"OQRON_STORAGE": via_proxy, "OQRON_BROKER": via_proxy, "OQRON_LOCK": via_proxy},
                 ).wait_workers(1)
    jobs = queue("paced").add_bulk([{"n": n, "sleep": sleep} for n in range(12)])
    wait_for(lambda: jobs[2].refresh().status == "completed", 10, message="three jobs done")
    proxy.cut_after(b"_job_next\r\n")
    added = time.monotonic()
    assert [job.wait(timeout=15) for job in jobs] == list(range(12))
    assert time.monotonic() - added < 10, "a job waited for its lease to expire"
    assert proxy.cuts == 1
    runs = counter()
    assert [runs[job.id] for job in jobs] == [1] * 12
    records = [job.refresh() for job in jobs]
    assert all(job.attempts_made == 1 and job.stalled_count == 0 for job in records)
    handed_back = [job for job in records if LOST in [e["reason"] for e in job.timeline]]
    assert handed_back, "no job was taken by the step whose reply was lost"
