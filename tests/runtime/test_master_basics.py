"""oqron-master end to end: jobs flow, titles, idle cost, start-up errors."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from oqron import Container, queue
from tests.support.master import MASTER, MasterProcess, cpu_seconds, title
from tests.support.wait import wait_for

THREE_QUEUES = """
for _name in ("alpha", "beta", "gamma"):
    queue(_name).handler(lambda ctx: ran(ctx, ctx.data["n"]))
"""


@pytest.mark.timeout(120)
def test_four_workers_run_two_thousand_jobs_exactly_once(
    kit: Container, spawn_master: Callable[..., MasterProcess], counter: Callable[[], dict[str, int]]
) -> None:
    master = spawn_master(THREE_QUEUES, "--workers", "4")
    master.wait_workers(4)
    jobs = []
    for index, name in enumerate(("alpha", "beta", "gamma")):
        numbers = range(index * 700, index * 700 + (667 if index else 666))
        jobs += queue(name).add_bulk([{"n": i} for i in numbers])
    assert len(jobs) == 2000
    wait_for(lambda: sum(queue(n).count("completed") for n in ("alpha", "beta", "gamma")) == 2000,
             90, interval=0.2, message="2000 completions")
    runs = counter()
    assert len(runs) == 2000 and set(runs.values()) == {1}
    assert all(j.refresh().return_value == j.data["n"] for j in jobs[::97])


def test_process_titles(kit: Container, spawn_master: Callable[..., MasterProcess], project: str) -> None:
    master = spawn_master("""
slow = queue("slow")
@slow.handler
def run(ctx):
    time.sleep(30)
""", "--workers", "2")
    master.wait_workers(2)
    label = f"[{project}:development]"
    wait_for(lambda: title(master.pid) == f"oqron-master {label} 2 workers leader", 5,
             message="the lone master leads")
    idle = sorted(title(pid) for pid in master.workers())
    assert idle == [f"oqron-worker 1 {label} idle", f"oqron-worker 2 {label} idle"]
    job = queue("slow").add({})
    pid = master.busy_worker(job.id)
    assert title(pid).startswith("oqron-worker") and f"{label} busy slow:{job.id} " in title(pid)
    def elapsed() -> float:
        found = re.search(rf"busy slow:{job.id} (\d+\.\d)s$", title(pid))
        return float(found.group(1)) if found else 0.0

    wait_for(lambda: elapsed() >= 1.0, 10, message="elapsed time counting up in the title")


@pytest.mark.timeout(60)
def test_idle_master_with_eight_children_uses_under_one_percent_cpu(
    kit: Container, spawn_master: Callable[..., MasterProcess]
) -> None:
    master = spawn_master('queue("q").handler(lambda ctx: None)\n', "--workers", "8")
    master.wait_workers(8)
    time.sleep(1.0)  # let start-up work settle before measuring
    pids = [master.pid, *master.children()]
    before = sum(cpu_seconds(p) for p in pids)
    time.sleep(10)
    used = sum(cpu_seconds(p) for p in pids) - before
    assert used < 0.1, f"{used:.3f} s of CPU in 10 s across master and 8 children"


def run_master(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(MASTER), *args], cwd=tmp_path, capture_output=True, text=True, timeout=30,
        env={**os.environ, "PYTHONPATH": str(tmp_path), **(env or {})},
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--app", "nope_missing"], "cannot import app module 'nope_missing'"),
        (["--app", "app", "--storage", "memory://"], "storage: memory:// lives inside one process"),
        (["--app", "app", "--broker", "bogus://x"], "broker: unknown URL scheme 'bogus'"),
        (["--app", "app", "--workers", "0"], "workers: expected an integer >= 1"),
        (["--app", "app", "--storage", "redis://127.0.0.1:1", "--broker", "redis://127.0.0.1:1",
          "--lock", "redis://127.0.0.1:1"], "cannot reach the backend"),
        (["--app", "broken"], "app module 'broken' failed to import: ZeroDivisionError"),
    ],
)
def test_start_up_errors_are_one_clear_line(
    tmp_path: Path, redis_url: str, args: list[str], message: str
) -> None:
    (tmp_path / "app.py").write_text("from oqron import queue\nqueue('q').handler(lambda ctx: 1)\n")
    (tmp_path / "broken.py").write_text("x = 1 / 0\n")
    env = {"OQRON_STORAGE": redis_url, "OQRON_BROKER": redis_url, "OQRON_LOCK": redis_url}
    result = run_master(tmp_path, *args, env=env)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert "Traceback" not in result.stderr
