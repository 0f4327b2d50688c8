"""A benchmark step stopped from outside (TERM, as the orchestrator or a user at the terminal
does) must take down what it started: its private Redis servers and its worker; and what a
killed step leaves, the orchestrator must still find by the step's tag."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.procs import alive, ancestors, kill_tagged, parent_map, step_env, tagged
from tests.support.master import ROOT
from tests.support.wait import wait_for


def cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:  # gone meanwhile
        return b""


def descendants(pid: int) -> dict[int, str]:
    """Live descendants of ``pid`` and their command names."""
    parents = parent_map()
    found = {}
    for child in parents:
        if pid in ancestors(child, parents) and (line := cmdline(child)):
            found[child] = line.split(b"\0")[0].decode()
    return found


@pytest.mark.timeout(90)
def test_a_depth_step_stopped_with_term_stops_its_servers_and_worker(redis_url: str, tmp_path: Path) -> None:
    params = {"depths": [300, 600], "n": 200, "repeats": 1000, "log_dir": str(tmp_path)}
    out = tmp_path / "step.json"
    step = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.run_one", "--framework", "oqron", "--workload", "depths",
         "--redis", redis_url, "--params", json.dumps(params), "--out", str(out)],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, start_new_session=True,
    )
    seen: dict[int, str] = {}  # every process the step started, caught while it was a descendant

    def running() -> bool:
        current = descendants(step.pid)
        seen.update(current)
        servers = [name for name in current.values() if "redis-server" in name]
        return len(servers) == 2 and len(current) > 2  # and a worker (drains come one by one)

    def exited() -> bool:
        seen.update(descendants(step.pid))  # watched until the end: it may start more meanwhile
        return step.poll() is not None

    try:
        wait_for(running, 60, message="the step's two Redis servers and its worker running")
        step.send_signal(signal.SIGTERM)
        wait_for(exited, 30, message="the step to exit")
        assert step.returncode == 1
        wait_for(lambda: not (set(seen) & set(parent_map())), 15,
                 message=f"processes the step started still running: {seen}")
    finally:
        if step.poll() is None:
            os.killpg(step.pid, signal.SIGKILL)
        for pid in set(seen) & set(parent_map()):  # what a failing step left behind
            os.kill(pid, signal.SIGKILL)
    result = json.loads(out.read_text())
    assert result["ok"] is False and "SystemExit" in result["error"]


@pytest.mark.timeout(60)
def test_an_oqron_master_orphaned_by_its_step_is_still_found_by_the_tag(tmp_path: Path) -> None:
    tag = project = f"orphan-{os.getpid()}"
    url = f"sqlite:///{tmp_path}/orphan.db"
    master = [str(Path(sys.executable).with_name("oqron-master")), "--app", "benchmarks.tasks.oqron_tasks",
              "--workers", "1", "--storage", url, "--broker", url, "--lock", url, "--project", project]
    # A shell starts the master in the background and exits at once: the master is orphaned, as
    # when its step is killed, and has set its process title before it is looked for.
    subprocess.run(["sh", "-c", 'exec "$@" >/dev/null 2>&1 &', "sh", *master], check=True,
                   env={**os.environ, **step_env(tag), "PYTHONPATH": str(ROOT), "BENCH_REDIS": ""})
    try:
        def titled() -> list[int]:
            found = tagged(tag)
            return [pid for pid in found if cmdline(pid).startswith(b"oqron-worker")]

        wait_for(titled, 30, message="the orphaned master's child, found by the tag")
        found = tagged(tag)
        assert any(cmdline(pid).startswith(b"oqron-master") for pid in found)
    finally:
        kill_tagged(tag)
        for pid in parent_map():  # if the tag failed: by the project in the title
            if f"[{project}:".encode() in cmdline(pid):
                os.kill(pid, signal.SIGKILL)
    assert not any(alive(pid) for pid in found)
