"""The prefork master: forks children, keeps their count, renews their jobs' leases, enforces hard
timeouts, requeues the jobs of children that die, and obeys signals.

The loop is deliberately plain: signal handlers only queue the signal; each turn waits (at most
about a second) for a signal or a child's message, then handles signals one at a time, reads
messages, reaps dead children, renews leases, enforces timeouts, and forks or stops children
until their number is right. The master never runs job code.
"""

from __future__ import annotations

import logging
import os
import queue as stdlib_queue
import select
import signal
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from ..adapters import shown_url
from ..adapters.base import Lease
from ..config import Config
from ..container import Container
from ..errors import AdapterError, LeaseLost
from ..registry import registry
from . import messages
from .child import EXIT_BOOT_ERROR, Child, child_main
from .cluster import Cluster
from .fence import HandBackFence
from .outage import Outage
from .process import Pidfile, describe_exit, exit_code, reopen_log_files, set_title

log = logging.getLogger("oqron.master")

HANDLED = ("SIGTERM", "SIGINT", "SIGQUIT", "SIGHUP", "SIGTTIN", "SIGTTOU", "SIGUSR1", "SIGCHLD")
TICK = 1.0
#: A child's job running this long has the jobs it took behind it handed back to other children
#: (a child takes several only while its jobs run a few milliseconds). The master's view of
#: which job runs can be late; the hand-back fence (fence.py) keeps a child from running a job
#: handed back meanwhile, at the price of the child giving up its batch when the master looked.
HELD_RELEASE_AFTER = 0.2
#: After a shutdown's deadline, how long to keep trying to requeue dead workers' jobs.
REQUEUE_GRACE = 10.0
RUNNING, DRAINING, STOPPED = "running", "draining", "stopped"


class HaltMaster(Exception):
    """Stop the master with a reason (e.g. children cannot boot)."""

    def __init__(self, reason: str, code: int = 1) -> None:
        super().__init__(reason)
        self.code = code


@dataclass
class RunningJob:
    lease: Lease
    started: float
    timeout: float | None


@dataclass
class ChildHandle:
    pid: int
    number: int
    consumer: str
    generation: int
    fence: HandBackFence
    spawned: float = field(default_factory=time.monotonic)
    booted: bool = False
    job: RunningJob | None = None
    held: list[str] = field(default_factory=list)  # lease tokens of jobs taken behind the running one
    ahead: bool = False  # and it has asked for its next batch, not yet seen its reply
    stopping: bool = False
    aborted_at: float | None = None
    killed_at: float | None = None
    shutdown_kill: bool = False

    @property
    def running_id(self) -> str | None:
        """The job the child said it runs (None when idle)."""
        return self.job.lease.job_id if self.job is not None else None


class Master:
    def __init__(
        self,
        config: Config,
        queues: dict[str, int],
        reload: Callable[[], tuple[Config, dict[str, int]]] | None = None,
    ) -> None:
        """``queues``: queue → weight consumed by the children. ``reload`` re-reads config and
        code for HUP and returns the new config and queues (raising if they are broken)."""
        self.config = config
        self.queues = queues
        self.reload_code = reload
        self.node_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.workers = config.workers
        self.children: dict[int, ChildHandle] = {}
        self.generation = 0
        self.phase = RUNNING
        self.drain_deadline = 0.0
        self.signals: stdlib_queue.SimpleQueue[int] = stdlib_queue.SimpleQueue()
        self.next_renewal = 0.0
        self.spawn_delay = 0.0
        self.next_spawn = 0.0
        self.pending_recovery: list[tuple[ChildHandle, int]] = []
        self.next_requeue = 0.0
        self.lost_leases: set[Lease] = set()
        self.renewals = Outage("lease renewal", log)
        self.requeues = Outage("requeueing the jobs of dead workers", log)
        self.pidfile = Pidfile(config.pidfile) if config.pidfile else None
        self.wake_r, self.wake_w = os.pipe()
        # Children's messages are read at most every message_window seconds: a busy pool sends
        # thousands per second, and waking for each would cost the master a core (at 0.02 s,
        # two children running 20 ms jobs still cost it 0.12-0.20 ms of CPU per job; at 0.1 s,
        # 0.05-0.07 ms). Crashes still wake it at once (SIGCHLD), a job's start time comes from
        # the child (timeouts do not stretch by the window), and the pipe holds two windows of
        # a busy pool's lines (messages.open_pipe).
        self.msg_r, self.msg_w, self.message_window = messages.open_pipe()
        self.reader = messages.Reader(self.msg_r)
        self.messages_read_at = 0.0
        self.cluster = Cluster(self.node_id, config, registry)
        self.title_leading: list[int] | None = None

    @property
    def container(self) -> Container:
        return Container.get()  # a reload may replace it

    # --- the loop ----------------------------------------------------------------------------

    def run(self) -> int:
        self._setup()
        try:
            while self.phase != STOPPED:
                self.wait()
                self.handle_signals()
                self.read_messages()
                self.reap_children()
                self.release_held()
                self.renew_leases()
                self.enforce_timeouts()
                self.cluster_duties()
                self.manage_children()
            return 0
        except HaltMaster as halt:
            log.error("stopping: %s", halt)
            self.kill_children(signal.SIGKILL)
            return halt.code
        finally:
            self._teardown()

    def wait(self) -> None:
        timeout = max(0.0, min(TICK, self._time_to_next_deadline()))
        watched = [self.wake_r, self.msg_r]
        window_left = self.messages_read_at + self.message_window - time.monotonic()
        if window_left > 0:  # messages were read just now: let the next ones gather
            watched, timeout = [self.wake_r], min(timeout, window_left)
        try:
            ready, _, _ = select.select(watched, [], [], timeout)
        except InterruptedError:
            return
        if self.wake_r in ready:
            _drain(self.wake_r)

    def _time_to_next_deadline(self) -> float:
        now = time.monotonic()
        deadlines = [self.next_renewal, self.cluster.next_deadline()]
        if self.pending_recovery:
            deadlines.append(self.next_requeue)
        for child in self.children.values():
            if child.job is not None and (child.held or child.ahead):
                deadlines.append(child.job.started + HELD_RELEASE_AFTER)
            if child.job is not None and child.job.timeout is not None and child.aborted_at is None:
                deadlines.append(child.job.started + child.job.timeout)
            if child.aborted_at is not None and child.killed_at is None:
                deadlines.append(child.aborted_at + self.config.kill_grace)
        if self.phase == DRAINING:
            deadlines.append(self.drain_deadline)
        return min(deadlines) - now

    # --- set-up and tear-down ----------------------------------------------------------------

    def _setup(self) -> None:
        for fd in (self.wake_r, self.wake_w, self.msg_r):
            os.set_blocking(fd, False)
        for fd in (self.wake_r, self.wake_w, self.msg_r, self.msg_w):
            os.set_inheritable(fd, False)
        signal.set_wakeup_fd(self.wake_w)
        for name in HANDLED:
            signal.signal(getattr(signal, name), self._queue_signal)
        if self.pidfile is not None:
            self.pidfile.create()
        self._show_title()
        log.info(
            "oqron-master %s started: %d workers, queues %s, storage %s, broker %s",
            self.node_id, self.workers, ",".join(self.queues), shown_url(self.config.storage),
            shown_url(self.config.broker),
        )

    def _teardown(self) -> None:
        self.cluster.leave()
        signal.set_wakeup_fd(-1)
        if self.pidfile is not None:
            self.pidfile.remove()
        log.info("oqron-master %s stopped", self.node_id)

    def _queue_signal(self, signum: int, frame: FrameType | None) -> None:
        self.signals.put_nowait(signum)  # nothing else here: no logging, no raising

    def _show_title(self) -> None:
        label = f"[{self.config.project}:{self.config.environment}]"
        leading = self.cluster.leadership.leading()
        self.title_leading = leading
        role = ""
        if leading:
            total = self.cluster.leadership.total
            role = " leader" if total == 1 else " leader shards " + ",".join(map(str, leading))
        set_title(f"oqron-master {label} {self.workers} workers{role}")

    def cluster_duties(self) -> None:
        busy = sum(1 for c in self.children.values() if c.job is not None)
        self.cluster.tick(self.workers, busy)
        if self.cluster.leadership.leading() != self.title_leading:
            self._show_title()

    # --- signals -----------------------------------------------------------------------------

    def handle_signals(self) -> None:
        while True:
            try:
                signum = self.signals.get_nowait()
            except stdlib_queue.Empty:
                return
            name = signal.Signals(signum).name
            handler = getattr(self, f"handle_{name[3:].lower()}", None)
            if handler is not None:
                handler()

    def handle_term(self) -> None:
        """Warm shutdown: stop claiming, let running jobs finish within graceful_timeout."""
        if self.phase == RUNNING:
            log.info("warm shutdown: waiting up to %.1f s for running jobs", self.config.graceful_timeout)
            self.cluster.resign()
            self._show_title()
            self.phase = DRAINING
            self.drain_deadline = time.monotonic() + self.config.graceful_timeout
            for child in self.children.values():
                self._stop_child(child)

    handle_int = handle_term

    def handle_quit(self) -> None:
        """Cold shutdown: kill the children now and put their jobs back in their queues."""
        log.info("cold shutdown: killing %d children", len(self.children))
        self.cluster.resign()
        self.phase = DRAINING
        self.drain_deadline = time.monotonic()
        self.kill_children(signal.SIGKILL, shutdown=True)

    def handle_hup(self) -> None:
        """Reload: re-read config and code, then replace the children gracefully."""
        if self.reload_code is None or self.phase != RUNNING:
            return
        container = self.container
        try:
            self.config, self.queues = self.reload_code()
        except Exception as exc:  # noqa: BLE001 - broken new code must not stop the running pool
            log.error("reload failed, keeping the running code: %s", exc)
            return
        if self.container is not container or self.config.clustering != self.cluster.config.clustering:
            self.cluster.resign()
            self.cluster = Cluster(self.node_id, self.config, registry)
        self.workers = self.config.workers
        self.generation += 1
        log.info("reloaded: replacing %d children (generation %d)", len(self.children), self.generation)
        for child in self.children.values():
            self._stop_child(child)
        self._show_title()

    def handle_ttin(self) -> None:
        self.workers += 1
        log.info("TTIN: %d workers", self.workers)
        self._show_title()

    def handle_ttou(self) -> None:
        self.workers = max(1, self.workers - 1)
        log.info("TTOU: %d workers", self.workers)
        self._show_title()

    def handle_usr1(self) -> None:
        reopen_log_files()
        log.info("USR1: log files reopened")
        for child in self.children.values():
            _kill(child.pid, signal.SIGUSR1)

    def handle_chld(self) -> None:
        """Reaping happens every turn of the loop; the signal only wakes it."""

    # --- children ----------------------------------------------------------------------------

    def read_messages(self) -> None:
        batch = self.reader.read()
        if batch:
            self.messages_read_at = time.monotonic()
        for message in batch:
            child = self.children.get(int(message.get("pid", 0)))
            if child is None:
                continue
            kind = message.get("t")
            if kind == "ready":
                child.booted = True
            elif kind == "start":  # also ends the child's previous job, if any
                lease = Lease(message["q"], message["id"], message["tok"], child.consumer)
                child.job = RunningJob(lease, _started(message), message.get("timeout"))
                child.held = [str(token) for token in message.get("held") or ()]
                child.ahead = bool(message.get("ahead"))
            elif kind == "done":
                child.job = None
                child.held = []
                child.ahead = False
                child.aborted_at = None

    def reap_children(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            child = self.children.pop(pid, None)
            if child is not None:
                child.fence.close()
                self._child_exited(child, status)
        self._retry_recoveries()
        if self.phase == DRAINING and not self.children:
            if self.pending_recovery and time.monotonic() > self.drain_deadline + REQUEUE_GRACE:
                log.warning("stopping without requeueing the jobs of %d workers (backend unavailable); "
                            "their leases will expire and stall recovery will requeue them",
                            len(self.pending_recovery))
                self.pending_recovery = []
            if not self.pending_recovery:
                self.phase = STOPPED

    def _child_exited(self, child: ChildHandle, status: int) -> None:
        reason, _ = describe_exit(status)
        code = exit_code(status)
        if not child.booted and not child.stopping and code == EXIT_BOOT_ERROR:
            raise HaltMaster(f"worker {child.number} could not boot (see its error above)")
        expected = (child.stopping and code == 0) or child.shutdown_kill
        level = logging.INFO if expected else logging.WARNING
        log.log(level, "worker %d (pid %d) %s", child.number, child.pid, reason)
        # Died before it could take a job, or failed soon after booting while holding none (a
        # bug outside any job; recycling exits 0): slow down rather than fork in a loop.
        crashed_idle = (code != 0 and not expected and child.job is None
                        and time.monotonic() - child.spawned < 2.0)
        if not child.booted or crashed_idle:
            self.spawn_delay = min(5.0, max(0.1, self.spawn_delay * 2))
            self.next_spawn = time.monotonic() + self.spawn_delay
        self.pending_recovery.append((child, status))

    def _retry_recoveries(self) -> None:
        if not self.pending_recovery or time.monotonic() < self.next_requeue:
            return
        pending, self.pending_recovery = self.pending_recovery, []
        for child, status in pending:
            try:
                self._recover_jobs(child, status)
            except AdapterError as exc:
                self.next_requeue = time.monotonic() + self.requeues.failed(exc)
                self.pending_recovery.append((child, status))
            except Exception:
                log.exception("requeueing the jobs of worker %d failed; stall recovery will", child.number)
            else:
                self.requeues.recovered()

    def _recover_jobs(self, child: ChildHandle, status: int) -> None:
        lifecycle = self.container.lifecycle
        reason, _ = describe_exit(status)
        running = child.running_id
        for lease in _newest_first(self.container.broker.leases_of(child.consumer)):
            queue = registry.queues.get(lease.queue)
            if child.shutdown_kill:
                lifecycle.release_lease(lease, "requeued: worker stopped by shutdown")
                outcome = "requeued"
            elif lease.job_id != running:  # taken but never run (the child says "start" first)
                lifecycle.release_lease(lease, f"requeued: worker {child.number} stopped before running it")
                outcome = "requeued"
            elif child.aborted_at is not None:
                timeout = queue.timeout if queue is not None else None
                error = {"type": "JobTimeout", "message": f"hard timeout: killed after {timeout} s"}
                outcome = lifecycle.recover_lease(lease, error, queue) or "unchanged"
            else:
                message = f"worker {child.number} (pid {child.pid}) {reason} while running the job"
                error = {"type": "WorkerCrashed", "message": message}
                outcome = lifecycle.recover_lease(lease, error, queue) or "unchanged"
            log.warning("job %s of worker %d: %s", lease.job_id, child.number, outcome)

    def manage_children(self) -> None:
        if self.phase != RUNNING:
            return
        current = [
            c for c in self.children.values() if c.generation == self.generation and not c.stopping
        ]
        if len(current) > self.workers:
            excess = sorted(current, key=lambda c: (c.job is None, c.number), reverse=True)
            for child in excess[: len(current) - self.workers]:
                self._stop_child(child)
            return
        if len(current) < self.workers and time.monotonic() >= self.next_spawn:
            used = {c.number for c in current}
            free = (n for n in range(1, self.workers + 1) if n not in used)
            for _ in range(self.workers - len(current)):
                self.spawn_child(next(free))
        if self.spawn_delay and current and all(time.monotonic() - c.spawned > 10 for c in current):
            self.spawn_delay = 0.0

    def spawn_child(self, number: int) -> None:
        handled = {getattr(signal, name) for name in HANDLED}
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, handled)
        fence = HandBackFence()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                for fd in (self.wake_r, self.wake_w, self.msg_r):
                    os.close(fd)
                consumer = self._consumer_id(number, os.getpid())
                child = Child(number, consumer, self.config, registry, self.queues, self.msg_w,
                              fence, master_pid=os.getppid())
                code = child_main(child)
            finally:
                os._exit(code)
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
        self.children[pid] = ChildHandle(pid, number, self._consumer_id(number, pid), self.generation, fence)

    def _consumer_id(self, number: int, pid: int) -> str:
        return f"{self.node_id}/{number}/{pid}"

    def _stop_child(self, child: ChildHandle) -> None:
        child.stopping = True
        _kill(child.pid, signal.SIGTERM)

    def kill_children(self, signum: int, shutdown: bool = False) -> None:
        for child in self.children.values():
            child.shutdown_kill = child.shutdown_kill or shutdown
            child.killed_at = time.monotonic()
            _kill(child.pid, signum)

    # --- leases and timeouts -----------------------------------------------------------------

    def renew_leases(self) -> None:
        now = time.monotonic()
        if now < self.next_renewal:
            return
        self.next_renewal = now + self.config.lease_ttl / 5
        running = [c.job.lease for c in self.children.values() if c.job is not None]
        if not running and not any(c.held for c in self.children.values()):
            return
        try:
            lost = self.container.broker.renew(running + self._held_leases(), self.config.lease_ttl)
        except AdapterError as exc:
            self.renewals.failed(exc)  # next try at the usual cadence: a lease outlives several
            self.cluster.backend_trouble()
            return
        self.renewals.recovered()
        # A lease reported lost may belong to a job its child finished a moment ago (the "done"
        # is still in the pipe): only one reported at two renewals in a row is really lost.
        suspects, self.lost_leases = self.lost_leases, set(lost) & set(running)
        for lease in self.lost_leases & suspects:
            log.warning("lease of job %s was lost; its result will be refused", lease.job_id)

    def _held_leases(self) -> list[Lease]:
        """Jobs children took in a batch and have not run yet: kept alive like running ones."""
        return [lease for child in self.children.values() if child.held for lease in self._held_by(child)]

    def _held_by(self, child: ChildHandle, taken_up_to: int | None = None) -> list[Lease]:
        """The leases the child listed as held, and with ``taken_up_to`` (the newest lease token
        when the master began handing back) those of a batch it asked for ahead: its tokens are
        newer than any the child listed. Never the job it runs, nor one it finished whose end
        is still on its way (their tokens are older)."""
        leases, held = self.container.broker.leases_of(child.consumer), set(child.held)
        listed = [lease for lease in leases if lease.token in held]
        if child.ahead and taken_up_to is not None and child.job is not None:
            newest = max(int(token) for token in [*child.held, child.job.lease.token])
            listed += [lease for lease in leases if newest < int(lease.token) <= taken_up_to]
        return _newest_first(listed)

    def release_held(self) -> None:
        """A child whose job turned out long gives up the jobs it took behind it: another child
        runs them now. The child itself never runs jobs it held behind a long one."""
        stuck = self._held_behind_long_jobs()
        if not stuck:
            return
        try:
            taken_up_to = self.container.lifecycle.path.last_token()  # before the bump: fence.py
        except AdapterError as exc:
            log.debug("handing back held jobs: %s", exc)
            return
        for child in stuck:
            child.fence.bump()  # before reading the children's messages
        self.read_messages()
        bumped = {child.pid for child in stuck}
        for child in self._held_behind_long_jobs():
            if child.pid not in bumped:
                continue
            try:
                for lease in self._held_by(child, taken_up_to):
                    self.container.lifecycle.release_lease(lease, "requeued: taken behind a long job")
            except (AdapterError, LeaseLost) as exc:  # the child hands them back after its job
                log.debug("worker %d: handing back its held jobs failed: %s", child.number, exc)
            child.held, child.ahead = [], False

    def _held_behind_long_jobs(self) -> list[ChildHandle]:
        now = time.monotonic()
        return [child for child in self.children.values()
                if (child.held or child.ahead) and child.job is not None
                and now - child.job.started >= HELD_RELEASE_AFTER]

    def enforce_timeouts(self) -> None:
        now = time.monotonic()
        for child in self.children.values():
            job = child.job
            if job is not None and job.timeout is not None and child.aborted_at is None:
                if now - job.started > job.timeout:
                    log.warning("job %s passed its %s s hard timeout: aborting worker %d",
                                job.lease.job_id, job.timeout, child.number)
                    child.aborted_at = now
                    _kill(child.pid, signal.SIGABRT)
            if child.aborted_at is not None and child.killed_at is None:
                if now - child.aborted_at > self.config.kill_grace:
                    child.killed_at = now
                    _kill(child.pid, signal.SIGKILL)
        if self.phase == DRAINING and now >= self.drain_deadline:
            alive = [c for c in self.children.values() if c.killed_at is None]
            if alive:
                log.warning("graceful timeout: killing %d children and requeueing their jobs", len(alive))
                self.kill_children(signal.SIGKILL, shutdown=True)


def _started(message: dict[str, Any]) -> float:
    """When the child started the job (its own reading of the machine's monotonic clock), never
    later than now: the master may read the message up to a window after."""
    now = time.monotonic()
    at = message.get("at")
    return min(float(at), now) if isinstance(at, (int, float)) else now


def _newest_first(leases: list[Lease]) -> list[Lease]:
    """Leases in the order to hand them back, each to the head of its queue, so that they keep
    the order they were taken in (tokens grow with each take)."""
    return sorted(leases, key=lambda lease: -int(lease.token))


def _kill(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 4096):
            pass
    except BlockingIOError:
        pass

