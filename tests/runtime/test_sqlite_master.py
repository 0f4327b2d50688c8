"""The embedded default under load: SQLite, 4 children, 5,000 jobs, a child killed mid-job."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from oqron import Container, Retries, queue
from tests.support.master import MasterProcess
from tests.support.wait import wait_for


@pytest.fixture
def urls(tmp_path: Path) -> dict[str, str]:
    url = f"sqlite:///{tmp_path}/oqron.db"
    return {"storage": url, "broker": url, "lock": url}


APP = """
@queue("bulk").handler
def bulk(ctx):
    return ran(ctx, ctx.data["n"])

@queue("slow", retries=Retries(max=1, strategy="fixed", base_delay=0)).handler
def slow(ctx):
    ran(ctx)
    if ctx.attempt == 1:
        time.sleep(30)
    return "rerun"
"""


@pytest.mark.timeout(180)
def test_five_thousand_jobs_on_four_children_and_a_killed_child(
    kit: Container, spawn_master: Callable[..., MasterProcess], counter: Callable[[], dict[str, int]]
) -> None:
    master = spawn_master(APP, "--workers", "4")
    master.wait_workers(4)
    jobs = queue("bulk").add_bulk([{"n": i} for i in range(5000)])
    victim_job = queue("slow", retries=Retries(max=1, strategy="fixed", base_delay=0)).add({})
    victim = master.busy_worker(victim_job.id)
    wait_for(lambda: counter().get(victim_job.id) == 1, 20, message="slow job started")
    os.kill(victim, signal.SIGKILL)
    assert victim_job.wait(timeout=60) == "rerun"
    wait_for(lambda: queue("bulk").count("completed") == 5000, 150, interval=0.5, message="5,000 completions")
    runs = counter()
    assert all(runs[j.id] == 1 for j in jobs)
    assert runs[victim_job.id] == 2
    assert queue("bulk").count("waiting") == queue("bulk").count("active") == 0
