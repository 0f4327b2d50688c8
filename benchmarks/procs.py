"""Process helpers (standard library only: imported in the project venv and in the peers venv).

Every process a benchmark step starts inherits ``BENCH_TAG`` in its environment; whatever is left
when the step ends (a worker that ignored its signal, an RQ work horse in its own process group)
is found by that tag in ``/proc`` and killed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from typing import Any

TAG_VAR = "BENCH_TAG"


def step_env(tag: str) -> dict[str, str]:
    """What a step's environment adds so that every process it starts can be found by ``tag``.
    setproctitle (oqron's titles) overwrites a process's environ block unless SPT_NOENV is set:
    without it, a master orphaned by a killed step carried no tag and was left running."""
    return {TAG_VAR: tag, "SPT_NOENV": "1"}


def tagged(tag: str) -> list[int]:
    """Pids of live processes whose environment holds ``BENCH_TAG=tag`` (see ``step_env``), and
    their descendants, never this one."""
    needle = f"{TAG_VAR}={tag}".encode()
    parents = parent_map()
    found = set()
    for pid in parents:
        try:
            with open(f"/proc/{pid}/environ", "rb") as handle:
                if needle in handle.read().split(b"\0"):
                    found.add(pid)
        except OSError:
            continue
    found |= {pid for pid in parents if any(a in found for a in ancestors(pid, parents))}
    found.discard(os.getpid())
    return sorted(found)


def parent_map() -> dict[int, int]:
    """pid -> parent pid of every live process."""
    parents = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                parents[int(entry)] = int(handle.read().rsplit(") ", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
    return parents


def ancestors(pid: int, parents: dict[int, int]) -> list[int]:
    chain = []
    while pid in parents and parents[pid] > 1 and len(chain) < 64:
        pid = parents[pid]
        chain.append(pid)
    return chain


def kill_tagged(tag: str, timeout: float = 5.0) -> int:
    """SIGKILL every process carrying ``tag`` until none is left; returns how many were killed."""
    killed = 0
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = [p for p in tagged(tag) if alive(p)]
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
                killed += 1
            except ProcessLookupError:
                pass
        time.sleep(0.05)
    return killed


def alive(pid: int) -> bool:
    """True unless the process is gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(") ", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as handle:
            return [int(p) for p in handle.read().split()]
    except OSError:
        return []


class Worker:
    """A worker command started in its own session; ``stop()`` kills the whole session."""

    def __init__(self, argv: Sequence[str], env: dict[str, str], log_path: str,
                 cwd: str | None = None) -> None:
        self.argv = list(argv)
        self.env = env
        self.log_path = log_path
        self.cwd = cwd
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Worker:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(self.argv, env=self.env, cwd=self.cwd, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            pass
        self.process = None

    def log_tail(self, size: int = 3000) -> str:
        try:
            with open(self.log_path, "rb") as handle:
                return handle.read()[-size:].decode(errors="replace")
        except OSError:
            return ""


class Timeout(Exception):
    """A wait passed its deadline."""


def wait_for(predicate: Callable[[], Any], timeout: float, interval: float = 0.01,
             what: str = "condition") -> Any:
    """Call ``predicate`` until it returns something truthy; raise ``Timeout`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise Timeout(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)
