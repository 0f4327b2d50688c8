"""Process-level helpers for the master and its children: titles, parent-death signal, memory,
exit statuses, pidfiles."""

from __future__ import annotations

import ctypes
import logging
import os
import signal

import setproctitle as _setproctitle

PR_SET_PDEATHSIG = 1
_PAGE = os.sysconf("SC_PAGE_SIZE")


def set_title(title: str) -> None:
    _setproctitle.setproctitle(title)


def die_with_parent(parent_pid: int) -> None:
    """Ask the kernel to SIGKILL this process when its parent dies (Linux), and cover the race
    where the parent died before the request was made."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass  # not Linux: the child's own parent check still applies
    if os.getppid() != parent_pid:
        os._exit(0)


def rss_mib() -> float:
    """Resident memory of this process in MiB (Linux /proc)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * _PAGE / (1024 * 1024)
    except OSError:
        return 0.0


def describe_exit(status: int) -> tuple[str, bool]:
    """Human text for a waitpid status, and whether it was a SIGKILL (possible OOM kill)."""
    if os.WIFSIGNALED(status):
        signum = os.WTERMSIG(status)
        try:
            name = signal.Signals(signum).name
        except ValueError:
            name = f"signal {signum}"
        killed = signum == signal.SIGKILL
        hint = " (out of memory? killed by the kernel or an operator)" if killed else ""
        return f"killed by {name}{hint}", killed
    if os.WIFEXITED(status):
        return f"exited with code {os.WEXITSTATUS(status)}", False
    return f"ended with status {status}", False


def exit_code(status: int) -> int | None:
    return os.WEXITSTATUS(status) if os.WIFEXITED(status) else None


class Pidfile:
    """The master's pid on disk, refusing to start over a live master's pidfile."""

    def __init__(self, path: str) -> None:
        self.path = path

    def create(self) -> None:
        try:
            with open(self.path) as existing:
                old = int(existing.read().strip() or 0)
        except (OSError, ValueError):
            old = 0
        if old and old != os.getpid() and _alive(old):
            raise RuntimeError(f"pidfile {self.path} names a running process ({old})")
        tmp = f"{self.path}.{os.getpid()}.tmp"
        with open(tmp, "w") as handle:
            handle.write(f"{os.getpid()}\n")
        os.replace(tmp, self.path)

    def remove(self) -> None:
        try:
            with open(self.path) as existing:
                if int(existing.read().strip() or 0) == os.getpid():
                    os.unlink(self.path)
        except (OSError, ValueError):
            pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def reopen_log_files() -> None:
    """Close file handlers so that they reopen their file on the next record (after logrotate
    moved it). Call from the main loop, never from a signal handler."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.acquire()
            try:
                handler.close()
            finally:
                handler.release()
