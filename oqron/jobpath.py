"""The hot path of every job — add, take (claim + start), finish — in as few round trips as the
backends allow.

``JobPath`` composes the storage and broker contracts step by step and works on any mix of
adapters. When storage and broker live on the same server, a backend may offer a combined path
doing each step in one round trip (``oqron.adapters.redis.jobpath``); ``job_path()`` picks it.
Both must behave identically: the runtime test suite runs on both.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .adapters.base import Broker, Lease, Storage
from .config import Config
from .errors import AdapterError, CorruptJob, LeaseLost
from .job import ACTIVE, FINAL, STARTABLE, WAITING, WAITING_CHILDREN, transition

if TYPE_CHECKING:
    from .modules.queue import Queue

log = logging.getLogger("oqron.jobpath")

#: How long a job of another project/environment is set aside before it is looked at again.
FOREIGN_RETRY = 60.0


@dataclass(frozen=True)
class TakeRequest:
    """What a consumer claims: its queues in order, its id, the lease TTL, and each queue's
    default number of attempts (for jobs that did not set their own)."""

    queues: Sequence[str]
    consumer: str
    lease_ttl: float
    max_attempts: Mapping[str, int]


@dataclass
class Claimed:
    """A job leased to this process, with its record as of the start of this attempt."""

    lease: Lease
    record: dict[str, Any]
    #: Taken in a batch behind another job: its handler starts later than its attempt did.
    prefetched: bool = False
    #: Jobs still ready in its queue right after it was taken (None where the path does not
    #: say): a child takes the next job early only while every child has one to take.
    ready_behind: int | None = None

    @property
    def job_id(self) -> str:
        return self.lease.job_id


@dataclass
class Ending:
    """How an attempt ended, ready to be recorded: the record's changes and timeline entry, and
    whether the job is done with (ack) or runs again after ``delay`` (nack)."""

    claimed: Claimed
    changes: dict[str, Any]
    entry: dict[str, Any]
    ack: bool
    delay: float
    queue: Queue | None

    @property
    def status(self) -> str:
        return str(self.changes["status"])


#: Told how a finish sent with ``finish_later`` went: the job's children ids, or None when the
#: attempt no longer owned the job (its end was refused).
Finished = Callable[[list[str] | None], None]


class JobPath:
    #: Whether finishes can be pipelined and several jobs taken per round trip (a child then
    #: takes short jobs in batches); the generic path does each step on its own.
    batches = False

    def __init__(self, storage: Storage, broker: Broker, config: Config) -> None:
        self.storage = storage
        self.broker = broker
        self.config = config
        self._ahead: list[Claimed] = []  # taken by finishes sent ahead, not collected yet

    # --- add ---------------------------------------------------------------------------------

    def add(
        self,
        queue: str,
        records: Sequence[Mapping[str, Any]],
        *,
        publish: bool,
        strategy: str | None,
        priority: int,
        delay: float,
        uniform: bool = False,
        new_ids: bool = False,
    ) -> list[bool]:
        """Store records (existing ids untouched) and publish the new ones unless told not to.
        ``uniform``: the records differ only in id and data (an adapter may encode the rest once).
        ``new_ids``: the ids were generated for this add, so none is stored or queued yet (an
        adapter may skip looking)."""
        inserted = self.storage.create_jobs(records)
        fresh = [r["id"] for r, ok in zip(records, inserted, strict=True) if ok]
        if publish and fresh:
            self.broker.publish(queue, fresh, strategy=strategy, priority=priority, delay=delay)
        return inserted

    # --- take --------------------------------------------------------------------------------

    def take(self, request: TakeRequest, timeout: float = 0.0) -> Claimed | None:
        """Lease the next runnable job and start its attempt (status active, attempts + 1).

        Ids whose record is missing or final are dropped; corrupt records are failed; records
        of another project/environment are set aside untouched. Waits up to ``timeout``.
        """
        deadline = time.monotonic() + timeout
        while True:
            remaining = max(0.0, deadline - time.monotonic())
            lease = self.broker.claim(request.queues, request.consumer, request.lease_ttl, remaining)
            if lease is None:
                return None
            try:
                claimed = self._start(lease, request.max_attempts.get(lease.queue, 1))
            except AdapterError:
                self._give_back(lease)
                raise
            if claimed is not None:
                return claimed

    def take_many(self, request: TakeRequest, count: int, timeout: float = 0.0) -> list[Claimed]:
        """Up to ``count`` jobs taken and started at once (at least one unless none came within
        ``timeout``). The generic path takes one."""
        claimed = self.take(request, timeout)
        return [] if claimed is None else [claimed]

    def _give_back(self, lease: Lease) -> None:
        """Storage failed between claim and start (it may live on another server than the
        broker): hand the lease back at once rather than leave it to expire as a stall."""
        try:
            self.broker.release(lease)
        except (AdapterError, LeaseLost):
            pass  # the broker is away too: the lease expires and the job goes back unharmed

    def _start(self, lease: Lease, default_max: int) -> Claimed | None:
        for _ in range(3):
            record = self.storage.get_job(lease.job_id)
            if not self.startable(lease, record):
                return None
            assert record is not None
            now = time.time()
            attempt = int(record.get("attempts_made") or 0) + 1
            changes = {
                "status": ACTIVE,
                "attempts_made": attempt,
                "max_attempts": (record.get("options") or {}).get("attempts") or default_max,
                "started_at": now,
                "finished_at": None,
                "worker_id": lease.consumer,
                "lease_token": lease.token,
            }
            entry = transition(record["status"], ACTIVE, f"attempt {attempt} on {lease.consumer}", now)
            if self.storage.update_job(
                lease.job_id,
                changes,
                expect={"attempts_made": record.get("attempts_made") or 0},
                expect_status=STARTABLE,
                append={"timeline": [entry]},
            ):
                record.update(changes)
                record["timeline"] = [*record.get("timeline", []), entry]
                return Claimed(lease, record)
        self.drop(lease)
        return None

    def startable(self, lease: Lease, record: Mapping[str, Any] | None) -> bool:
        """Whether a claimed id may run; otherwise deal with it (drop, fail, set aside)."""
        if record is None or record["status"] in FINAL or record["status"] == WAITING_CHILDREN:
            self.drop(lease)
            return False
        if record.get("corrupt"):
            self.fail_corrupt(lease, record)
            return False
        if (record.get("project"), record.get("environment")) != (
            self.config.project, self.config.environment,
        ):
            log.error(
                "job %s belongs to %s:%s, not %s:%s; leaving it untouched",
                lease.job_id, record.get("project"), record.get("environment"),
                self.config.project, self.config.environment,
            )
            try:
                self.broker.nack(lease, FOREIGN_RETRY)
            except LeaseLost:
                pass
            return False
        return True

    def release(self, lease: Lease, reason: str) -> bool:
        """Put a job that did not run back to waiting, at the head of its queue, without
        charging its attempt (the record's lease must still be this one). Returns whether the
        job was requeued."""
        record = self.storage.get_job(lease.job_id)
        if record is not None and record.get("corrupt"):
            self.fail_corrupt(lease, record)
            return False
        if record is None or record["status"] in FINAL:
            self.drop(lease)
            return False
        if record.get("lease_token") == lease.token:
            now = time.time()
            changes = {
                "status": WAITING,
                "attempts_made": max(0, int(record.get("attempts_made") or 1) - 1),
                "lease_token": None,
                "worker_id": None,
                "queued_at": now,
            }
            if not self.storage.update_job(
                lease.job_id,
                changes,
                expect={"lease_token": lease.token},
                append={"timeline": [transition(record["status"], WAITING, reason, now)]},
            ):
                return False
        try:
            self.broker.release(lease)
        except LeaseLost:
            return False
        return True

    def drop(self, lease: Lease) -> None:
        try:
            self.broker.ack(lease)
        except LeaseLost:
            pass

    def fail_corrupt(self, lease: Lease, record: Mapping[str, Any]) -> None:
        reason = record.get("corrupt")
        log.error("job %s: record could not be decoded (%s); failing it", lease.job_id, reason)
        error = {"type": CorruptJob.__name__, "message": f"job record could not be decoded: {reason}"}
        changes = {"status": "failed", "error": error, "finished_at": time.time(), "lease_token": None}
        self.storage.update_job(lease.job_id, changes)
        self.drop(lease)

    # --- finish ------------------------------------------------------------------------------

    def finish(
        self, ending: Ending, *, then: TakeRequest | None = None, count: int = 1
    ) -> tuple[list[str], list[Claimed]]:
        """Write the attempt's end if it still owns the record (else ``LeaseLost``), then ack or
        nack the lease. Returns the job's children ids as they are now (for dependencies) and,
        when ``then`` asks for them, up to ``count`` next jobs, already started."""
        claimed = ending.claimed
        if not self.storage.update_job(
            claimed.job_id,
            ending.changes,
            expect={"lease_token": claimed.lease.token},
            append={"timeline": [ending.entry]},
        ):
            raise LeaseLost(
                f"job {claimed.job_id}: attempt with lease {claimed.lease.token} no longer owns the job"
            )
        try:
            if ending.ack:
                self.broker.ack(claimed.lease)
            else:
                self.broker.nack(claimed.lease, ending.delay)
        except LeaseLost:
            # The lease expired after the record was written; whoever claims the id next sees
            # the record's truth and acts on it.
            log.warning("job %s: lease lost after recording the end of its attempt", claimed.job_id)
        children: list[str] = []
        if ending.ack:
            try:
                fresh = self.storage.get_job(claimed.job_id)  # children may have been linked meanwhile
            except AdapterError:  # the end is recorded; the leader's reconciliation finds the rest
                fresh = None
            children = list((fresh or claimed.record).get("children_ids") or [])
        if then is None:
            return children, []
        try:
            return children, self.take_many(then, count)
        except AdapterError as exc:
            # The end is recorded: failing now would have the caller write it again and be
            # refused. The consumer claims its next job the ordinary way, with its own backoff.
            log.debug("job %s recorded; taking the next job failed: %s", claimed.job_id, exc)
            return children, []

    def finish_later(
        self, ending: Ending, finished: Finished, then: TakeRequest | None = None, count: int = 1
    ) -> None:
        """Like ``finish``, but a path that pipelines may send it and return at once; ``finished``
        is called when the reply is read (at the latest with the next step on this path). With
        ``then``, up to ``count`` next jobs are taken in the same step: ``taken_ahead`` hands
        them over. The generic path records it now."""
        try:
            children, taken = self.finish(ending, then=then, count=count)
        except LeaseLost:
            finished(None)
        else:
            self._ahead.extend(taken)
            finished(children)

    def taken_ahead(self) -> list[Claimed]:
        """The jobs taken by finishes sent ahead with ``then``, waiting for their reply if need
        be (but not for the finishes sent after them)."""
        taken, self._ahead = self._ahead, []
        return taken

    def flush(self) -> None:
        """Wait for the replies of finishes sent with ``finish_later``."""

    def last_token(self) -> int | None:
        """The newest lease token handed out, on a path whose tokens grow with each take and
        that takes ahead (``finish_later`` with ``then``); None on the others."""
        return None


def job_path(storage: Storage, broker: Broker, config: Config) -> JobPath:
    """The fastest path the adapters allow."""
    from .adapters.redis.jobpath import RedisJobPath

    if RedisJobPath.serves(storage, broker):
        return RedisJobPath(storage, broker, config)
    return JobPath(storage, broker, config)
