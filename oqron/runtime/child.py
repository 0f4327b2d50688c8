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
from collections import deque
from types import FrameType

from ..config import Config
from ..container import Container
from ..errors import AdapterError, LeaseLost
from ..lifecycle import Claimed, Lifecycle
from ..registry import Registry
from . import messages
from .control import HardTimeout, StopChild
from .executor import SKIPPED, Attempt, Executor, Outcome
from .fence import HandBackFence
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
#: A job shorter than this lets the child take more per round trip (up to ``prefetch``); one
#: longer resets it to one at a time and hands back the jobs taken behind it (but one, after a
#: medium job).
SHORT_JOB = 0.005
#: A job shorter than this (and not short) lets the child take its next job while it runs the
#: one after, as long as the queue has a job for every child: the round trip between two jobs
#: is then hidden (it is 3 % of a 20 ms job). Longer jobs are recorded and followed by a fresh
#: take: a job taken behind them would wait, and would be handed back after
#: master.HELD_RELEASE_AFTER.
MEDIUM_JOB = 0.05
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
        fence: HandBackFence,
        master_pid: int,
    ) -> None:
        self.number = number
        self.consumer = consumer
        self.config = config
        self.registry = registry
        self.order = QueueOrder(queues)
        self.pipe = pipe
        self.fence = fence
        # The hand-back fence (see fence.py) as read before the jobs in hand were asked for,
        # before the last take was sent, and before the batch taken ahead was asked for.
        self.fence_seen = self.take_fence = self.ahead_fence = 0
        self.master_pid = master_pid
        self.pid = 0  # this child's, once booted
        self.idle = True
        self.stopping = False
        self.jobs_done = 0
        self.outage = Outage(f"worker {number} claiming jobs", log)
        self.reopen_logs = False
        self.label = f"oqron-worker {number} [{config.project}:{config.environment}]"
        self._busy_title: tuple[str, float] | None = None
        self.batch = 1  # jobs to take per round trip; grows while jobs run short
        self.batches = False
        self.ahead = False  # the next batch was asked for with a finish, its reply not read yet
        self.ready_behind: int | None = None  # jobs left ready in the queue of the last take

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
        self.batches = Container.get().lifecycle.path.batches and self.config.prefetch > 1
        threading.Thread(target=self._refresh_title, name="title", daemon=True).start()
        self.pid = os.getpid()  # said with every job: read once, not a system call per job
        messages.send(self.pipe, {"t": "ready", "pid": self.pid})
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
        held: deque[Claimed] = deque()  # jobs taken and started, not yet run
        try:
            while True:
                if not held:
                    if self.stopping or self._should_recycle():
                        executor.flush()  # the last ends sent ahead: what follows them runs here
                        return EXIT_OK
                    held.extend(self._wait_for_job(lifecycle))
                    if not held:
                        if os.getppid() != self.master_pid:
                            return EXIT_OK
                        continue
                elif self.stopping or self._should_recycle():  # jobs came with the last finish
                    self._give_up(executor, lifecycle, held, "requeued: worker stopping")
                    executor.flush()
                    return EXIT_OK
                held.extend(self._run_job(executor, lifecycle, held.popleft(), held))
        except StopChild:
            return EXIT_OK
        except HardTimeout:
            return EXIT_HARD_TIMEOUT

    def _wait_for_job(self, lifecycle: Lifecycle) -> list[Claimed]:
        """Block (idle, at most CLAIM_WAIT) until jobs are taken; back off while the backend
        is unavailable."""
        if self.reopen_logs:
            self.reopen_logs = False
            reopen_log_files()
        self.idle = True
        self.take_fence = self.fence.read()
        try:
            taken = lifecycle.claim_many(self.order.next(), self.consumer, self.config.lease_ttl,
                                         self._take_count(running=0), CLAIM_WAIT)
        except AdapterError as exc:
            time.sleep(self.outage.failed(exc))
            taken = []
        else:
            self.outage.recovered()
        self.idle = not taken
        return self._took(taken)

    def _run_job(
        self, executor: Executor, lifecycle: Lifecycle, claimed: Claimed, held: deque[Claimed]
    ) -> list[Claimed]:
        """Run one job and tell the master: "start" before it, "done" after it unless the next
        job's "start" follows at once. Returns the next jobs when they came with its end."""
        lease = claimed.lease
        queue = self.registry.queues.get(lease.queue)
        timeout = queue.timeout if queue is not None else None
        messages.send(
            self.pipe,
            {"t": "start", "pid": self.pid, "q": lease.queue, "id": lease.job_id,
             "tok": lease.token, "timeout": timeout, "held": [c.lease.token for c in held] if held else [],
             "ahead": self.ahead, "at": time.monotonic()},
        )
        if self.fence.read() != self.fence_seen:
            held.appendleft(claimed)
            outcome = self._give_up(executor, lifecycle, held, "requeued: taken behind a long job")
        else:
            outcome = self._execute(executor, lifecycle, claimed, held)
        if outcome.status != SKIPPED:
            self.jobs_done += 1
        if not outcome.next and not held:  # otherwise the next job's "start" tells the master
            messages.send(self.pipe, {"t": "done", "pid": self.pid, "id": lease.job_id})
            self._show_title()
        return self._took(outcome.next)

    def _execute(
        self, executor: Executor, lifecycle: Lifecycle, claimed: Claimed, held: deque[Claimed]
    ) -> Outcome:
        """Run the handler and record the end: sent ahead (no wait) while short jobs, or a
        medium one, are in hand or taken ahead; otherwise recorded with the next jobs taken in
        the same step."""
        self._busy_title = (f"{claimed.lease.queue}:{claimed.job_id}", time.monotonic())
        self._show_title()
        try:
            started = time.monotonic()
            attempt = executor.run(claimed)
            ran = time.monotonic() - started
            short = ran < SHORT_JOB
            self.batch = min(self.batch * 2, self.config.prefetch) if short else 1
            if attempt.control is not None:
                executor.record(attempt)
                raise attempt.control
            if short and not self.stopping and (held or self.ahead):
                return self._record_ahead(executor, lifecycle, attempt, held)
            medium = ran < MEDIUM_JOB and self.batches and not self.stopping
            if medium and (len(held) == 1 or (not held and self.ahead)):
                outcome = self._record_medium(executor, lifecycle, attempt, held)
                if outcome is not None:
                    return outcome
            self._gather_ahead(executor, held)
            if held:  # a long job: the others go back to whoever is free
                self._release(lifecycle, held, "requeued: taken behind a long job")
            # After a medium job, while the queue has a backlog: one to run next, one behind it.
            count = self._take_count(running=1, wanted=2 if medium and self._backlog() else None)
            then = None if self.stopping or not count else lifecycle.take_request(
                self.order.next(), self.consumer, self.config.lease_ttl, self.registry.queues
            )
            self.take_fence = self.fence.read()
            return executor.record(attempt, then, count)
        except AdapterError as exc:
            log.warning("job %s: backend unavailable, its lease will expire: %s", claimed.job_id, exc)
            return Outcome(SKIPPED)
        finally:
            self._busy_title = None

    def _record_ahead(
        self, executor: Executor, lifecycle: Lifecycle, attempt: Attempt, held: deque[Claimed]
    ) -> Outcome:
        """A short job's end is sent without waiting for the reply. The first of a batch also
        takes the next batch, collected after the batch's last job: while jobs run short, the
        child does not wait for Redis between batches (Redis takes the next batch while the
        child runs this one; asked for halfway through, it came too late: 6,200 jobs/s against
        6,900 with an empty handler)."""
        if not held:  # the last job of a batch whose successor was asked for ahead
            outcome = executor.record_later(attempt)
            outcome.next = self._collect_ahead(executor)
            return outcome
        count = self._take_count(running=1 + len(held))
        if self.ahead or not count:
            return executor.record_later(attempt)
        then = lifecycle.take_request(self.order.next(), self.consumer, self.config.lease_ttl,
                                      self.registry.queues)
        self.ahead, self.ahead_fence = True, self.fence.read()
        return executor.record_later(attempt, then, count)

    def _record_medium(
        self, executor: Executor, lifecycle: Lifecycle, attempt: Attempt, held: deque[Claimed]
    ) -> Outcome | None:
        """A medium job's end is sent without waiting for the reply, with a take of the job
        after next while the queue has a backlog; the next job is the one in hand, or the one
        taken with the last end (its reply came in while this job ran). None when the take
        sent ahead found no job: the end is recorded with a fresh take, as after a long job."""
        following = [] if held else self._collect_ahead(executor)
        if not held and not following:
            return None
        then = None
        count = self._take_count(running=1 + len(held) + len(following), wanted=1)
        if count and not self.ahead and self._backlog():
            then = lifecycle.take_request(self.order.next(), self.consumer, self.config.lease_ttl,
                                          self.registry.queues)
            self.ahead, self.ahead_fence = True, self.fence.read()
        outcome = executor.record_later(attempt, then, count)
        outcome.next = following
        return outcome

    def _backlog(self) -> bool:
        """Whether the last take left a job ready for every child: taking one early then keeps
        no sibling waiting."""
        return self.ready_behind is not None and self.ready_behind >= self.config.workers

    def _collect_ahead(self, executor: Executor) -> list[Claimed]:
        """The batch taken ahead, if one was asked for; all its jobs started their attempt
        before their turn."""
        if not self.ahead:
            return []
        self.ahead, self.take_fence = False, self.ahead_fence
        taken = executor.taken_ahead()
        for claimed in taken:
            claimed.prefetched = True
        if taken:
            self.ready_behind = taken[-1].ready_behind
        return taken

    def _took(self, taken: list[Claimed]) -> list[Claimed]:
        """Jobs taken together: all but the first wait their turn in this child, unless the
        master hands them back meanwhile (see fence.py)."""
        self.fence_seen = self.take_fence
        for claimed in taken[1:]:
            claimed.prefetched = True
        if taken:
            self.ready_behind = taken[-1].ready_behind
        return taken

    def _give_up(
        self, executor: Executor, lifecycle: Lifecycle, held: deque[Claimed], reason: str
    ) -> Outcome:
        """Hand back the jobs in hand and any batch taken ahead: the child stops, or the master
        looked at its held jobs while it was between two of them and may have handed them back
        already (see fence.py), so none of them may run here."""
        self._gather_ahead(executor, held)
        self._release(lifecycle, held, reason)
        return Outcome(SKIPPED)

    def _gather_ahead(self, executor: Executor, held: deque[Claimed]) -> None:
        """Add the batch taken ahead to the jobs in hand, to hand them all back."""
        try:
            held.extend(self._collect_ahead(executor))
        except AdapterError as exc:  # the job in hand is still recorded, with its own retries
            log.warning("the jobs taken ahead could not be read (%s); they are handed back at the "
                        "next step, or their leases expire", exc)

    def _take_count(self, running: int, wanted: int | None = None) -> int:
        """Jobs to take at once: ``wanted``, or the batch grown by short jobs, within the
        recycling limit (``running``: the jobs in hand count towards it)."""
        count = wanted or (self.batch if self.batches else 1)
        limit = self.config.max_jobs_per_child
        if limit is not None:
            count = min(count, limit - self.jobs_done - running)
        return max(0, count)

    def _release(self, lifecycle: Lifecycle, held: deque[Claimed], reason: str) -> None:
        """Hand back jobs taken but not run, without charging their attempt: each to the head
        of its queue, the last taken first, so that they keep their order there."""
        while held:
            claimed = held.pop()
            try:
                lifecycle.release_lease(claimed.lease, reason)
            except LeaseLost:  # the master handed it back already, or recovered it
                log.debug("job %s: handed back already", claimed.job_id)
            except AdapterError as exc:
                log.warning("job %s: could not hand it back (%s); it will be requeued", claimed.job_id, exc)

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
