"""A child process: claim a job, run it, report, repeat.

The child inherits the user's definitions from the master (imported before the fork) and opens
its own connections. It tells the master over the shared pipe when it holds a job and when it is
done, so the master can renew the lease and enforce the hard timeout: a handler may block the
child in C code for minutes and its lease is still kept alive.

Signals: TERM = stop after the current job (at once when idle); ABRT = the master's hard
timeout, raised inside the job as ``HardTimeout`` so the failure is recorded, then the child
exits; INT, QUIT, HUP, USR1, TTIN, TTOU are the master's business and ignored here.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import threading
import time
from types import FrameType

from ..config import Config
from ..container import Container
from ..errors import AdapterError
from ..lifecycle import Claimed, Lifecycle
from ..registry import Registry
from . import messages
from .control import HardTimeout, StopChild
from .executor import SKIPPED, Executor, Outcome
from .outage import Outage
from .process import die_with_parent, reopen_log_files, rss_mib, set_title
from .queues import QueueOrder

log = logging.getLogger("oqron.child")

#: Exit codes a child uses; the master reads them.
EXIT_OK = 0
EXIT_BOOT_ERROR = 70  # could not even start: the master stops rather than fork in a loop
EXIT_HARD_TIMEOUT = 71  # a job was aborted; the process state is not trusted any more
CLAIM_WAIT = 5.0
RECORD_RETRY_WINDOW = 60.0
IGNORED_SIGNALS = ("SIGINT", "SIGQUIT", "SIGHUP", "SIGTTIN", "SIGTTOU")


class Child:
    def __init__(
        self,
        number: int,
        consumer: str,
        config: Config,
        registry: Registry,
        queues: dict[str, int],
        pipe: int,
        master_pid: int,
    ) -> None:
        self.number = number
        self.consumer = consumer
        self.config = config
        self.registry = registry
        self.order = QueueOrder(queues)
        self.pipe = pipe
        self.master_pid = master_pid
        self.idle = True
        self.stopping = False
        self.jobs_done = 0
        self.outage = Outage(f"worker {number} claiming jobs", log)
        self.reopen_logs = False
        self.label = f"oqron-worker {number} [{config.project}:{config.environment}]"
        self._busy_title: tuple[str, float] | None = None

    # --- boot --------------------------------------------------------------------------------

    def boot(self) -> None:
        die_with_parent(self.master_pid)
        for name in IGNORED_SIGNALS:
            signal.signal(getattr(signal, name), signal.SIG_IGN)
        signal.signal(signal.SIGTERM, self._on_term)
        signal.signal(signal.SIGABRT, self._on_abort)
        signal.signal(signal.SIGUSR1, self._on_usr1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.set_wakeup_fd(-1)
        signal.pthread_sigmask(signal.SIG_SETMASK, set())
        random.seed()
        Container.get().after_fork()
        threading.Thread(target=self._refresh_title, name="title", daemon=True).start()
        messages.send(self.pipe, {"t": "ready", "pid": os.getpid()})
        set_title(f"{self.label} idle")

    def _on_term(self, signum: int, frame: FrameType | None) -> None:
        self.stopping = True
        if self.idle:
            raise StopChild()

    def _on_abort(self, signum: int, frame: FrameType | None) -> None:
        if not self.idle:
            raise HardTimeout()

    def _on_usr1(self, signum: int, frame: FrameType | None) -> None:
        self.reopen_logs = True  # done between jobs: handlers are not safe to close here

    # --- main loop ---------------------------------------------------------------------------

    def run(self) -> int:
        lifecycle = Container.get().lifecycle
        executor = Executor(
            lifecycle, self.registry, self.consumer, record_retry_window=RECORD_RETRY_WINDOW
        )
        claimed: Claimed | None = None
        try:
            while True:
                if claimed is None:
                    if self.stopping or self._should_recycle():
                        return EXIT_OK
                    claimed = self._wait_for_job(lifecycle)
                    if claimed is None:
                        if os.getppid() != self.master_pid:
                            return EXIT_OK
                        continue
                elif self.stopping or self._should_recycle():  # a job came with the last finish
                    lifecycle.release_lease(claimed.lease, "requeued: worker stopping")
                    return EXIT_OK
                claimed = self._run_job(executor, lifecycle, claimed)
        except StopChild:
            return EXIT_OK
        except HardTimeout:
            return EXIT_HARD_TIMEOUT

    def _wait_for_job(self, lifecycle: Lifecycle) -> Claimed | None:
        """Block (idle, at most CLAIM_WAIT) until a job is claimed; back off while the backend
        is unavailable."""
        if self.reopen_logs:
            self.reopen_logs = False
            reopen_log_files()
        self.idle = True
        try:
            claimed = lifecycle.claim(self.order.next(), self.consumer, self.config.lease_ttl, CLAIM_WAIT)
        except AdapterError as exc:
            time.sleep(self.outage.failed(exc))
            claimed = None
        else:
            self.outage.recovered()
        self.idle = claimed is None
        return claimed

    def _run_job(self, executor: Executor, lifecycle: Lifecycle, claimed: Claimed) -> Claimed | None:
        """Run one job, tell the master, and return the next job when it came with the finish."""
        lease = claimed.lease
        queue = self.registry.queues.get(lease.queue)
        timeout = queue.timeout if queue is not None else None
        messages.send(
            self.pipe,
            {"t": "start", "pid": os.getpid(), "q": lease.queue, "id": lease.job_id,
             "tok": lease.token, "timeout": timeout},
        )
        self._busy_title = (f"{lease.queue}:{lease.job_id}", time.monotonic())
        self._show_title()
        last = self.config.max_jobs_per_child is not None and (
            self.jobs_done + 1 >= self.config.max_jobs_per_child
        )
        then = None if self.stopping or last else lifecycle.take_request(
            self.order.next(), self.consumer, self.config.lease_ttl, self.registry.queues
        )
        try:
            outcome = executor.execute(claimed, then)
        except AdapterError as exc:
            log.warning("job %s: backend unavailable, its lease will expire: %s", lease.job_id, exc)
            outcome = Outcome(SKIPPED)
        finally:
            self._busy_title = None
        if outcome.status != SKIPPED:
            self.jobs_done += 1
        if outcome.next is None:  # otherwise the next job's "start" tells the master
            messages.send(self.pipe, {"t": "done", "pid": os.getpid(), "id": lease.job_id})
            self._show_title()
        return outcome.next

    def _should_recycle(self) -> bool:
        limit = self.config.max_jobs_per_child
        if limit is not None and self.jobs_done >= limit:
            log.info("child %s recycles after %d jobs", self.number, self.jobs_done)
            return True
        memory = self.config.max_memory_per_child
        if memory is not None and rss_mib() > memory:
            log.warning("child %s recycles: %.0f MiB RSS > %d MiB", self.number, rss_mib(), memory)
            return True
        return False

    # --- process title -----------------------------------------------------------------------

    def _show_title(self) -> None:
        busy = self._busy_title
        if busy is None:
            set_title(f"{self.label} idle")
        else:
            set_title(f"{self.label} busy {busy[0]} {time.monotonic() - busy[1]:.1f}s")

    def _refresh_title(self) -> None:
        while True:
            time.sleep(1.0)
            if self._busy_title is not None:
                self._show_title()


def child_main(child: Child) -> int:
    """Entry point in the forked process; returns the exit code."""
    try:
        child.boot()
    except StopChild:
        return EXIT_OK  # told to stop (TTOU, shutdown) while booting: not a boot failure
    except BaseException:
        log.exception("child %s failed to boot", child.number)
        return EXIT_BOOT_ERROR
    try:
        return child.run()
    except BaseException:
        log.exception("child %s crashed", child.number)
        return 1
