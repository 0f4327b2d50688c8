"""Run ``oqron-master`` as a real process, in its own session, and look at it from outside."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from .wait import wait_for

ROOT = Path(__file__).resolve().parents[2]
MASTER = ROOT / "bin" / "oqron-master"


def proc_children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as handle:
            return [int(p) for p in handle.read().split()]
    except OSError:
        return []


def title(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(") ", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().split(") ", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class MasterProcess:
    """One ``oqron-master`` started on an app module written into ``workdir``."""

    def __init__(self, workdir: Path, app_source: str, env: dict[str, str], *args: str,
                 module: str = "app") -> None:
        self.workdir = workdir
        self.module = module
        self.write_app(app_source)
        self.log_path = workdir / f"master-{time.monotonic_ns()}.log"
        self.env = {**os.environ, **env, "PYTHONPATH": f"{workdir}{os.pathsep}{ROOT}"}
        self.args = [sys.executable, str(MASTER), "--app", module, *args]
        self.process: subprocess.Popen[bytes] | None = None

    def write_app(self, source: str) -> None:
        path = self.workdir / f"{self.module}.py"
        path.write_text(textwrap.dedent(source))
        cache = self.workdir / "__pycache__"
        if cache.exists():
            for stale in cache.glob(f"{self.module}.*"):
                stale.unlink()

    def start(self) -> MasterProcess:
        log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            self.args, cwd=self.workdir, env=self.env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def children(self) -> list[int]:
        return [p for p in proc_children(self.pid) if alive(p)]

    def workers(self, state: str | None = None) -> list[int]:
        """Children whose title says they are oqron workers (optionally idle/busy)."""
        found = []
        for pid in self.children():
            text = title(pid)
            if text.startswith("oqron-worker") and (state is None or f" {state}" in text):
                found.append(pid)
        return found

    def wait_workers(self, count: int, state: str | None = "idle", timeout: float = 20) -> list[int]:
        return wait_for(lambda: len(self.workers(state)) == count and self.workers(state),
                        timeout, message=f"{count} {state or ''} workers\n{self.log()}")

    def busy_worker(self, job_id: str, timeout: float = 20) -> int:
        def find() -> int | None:
            for pid in self.workers("busy"):
                if job_id in title(pid):
                    return pid
            return None
        return wait_for(find, timeout, interval=0.002, message=f"a worker busy with {job_id}")

    def send(self, signum: int) -> None:
        os.kill(self.pid, signum)

    def wait_exit(self, timeout: float = 30) -> int:
        assert self.process is not None
        return self.process.wait(timeout)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-6000:]
        except OSError:
            return ""

    def stop(self) -> None:
        """Kill the whole session (master and children), whatever state it is in."""
        if self.process is None:
            return
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            pass
