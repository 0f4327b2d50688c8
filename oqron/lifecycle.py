"""Every state change of a job, composed from the storage and broker adapters.

Producers (add, cancel, retry), children (claim, start, finish) and the master (a crashed
child's jobs, expired leases) all change jobs through this one class, so the invariants live in
one place:

* a record write that ends an attempt is guarded by the attempt's lease token (compare-and-set
  on the record), so a stale worker can never overwrite a newer attempt — ``LeaseLost``;
* a claimed job whose record is already final is dropped, never run again;
* the broker is told after the record is written; if the process dies in between, the job is
  still leased or still ready, and the next claim or stall recovery sees the record's truth.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import dag, retention
from .adapters.base import Broker, Lease, Storage
from .config import Config
from .errors import DependencyNotFound, LeaseLost
from .job import (
    ACTIVE,
    CANCELLED,
    COMPLETED,
    DELAYED,
    FAILED,
    FINAL,
    WAITING,
    WAITING_CHILDREN,
    Job,
    Retries,
    new_records,
    transition,
)
from .jobpath import Claimed, Ending, TakeRequest, job_path

if TYPE_CHECKING:
    from .modules.queue import Queue

log = logging.getLogger("oqron.lifecycle")
DEFAULT_RETRIES = Retries()

__all__ = ["AddOptions", "Claimed", "Ending", "Lifecycle", "TakeRequest"]


@dataclass(frozen=True)
class AddOptions:
    """Options of ``Queue.add`` after validation (one set for a whole ``add_bulk``)."""

    priority: int = 0
    delay: float = 0.0
    attempts: int | None = None
    backoff: dict[str, Any] | None = None
    depends_on: tuple[str, ...] = ()
    on_parent_failure: str = "cascade-fail"
    correlation_id: str | None = None
    triggered_by: str = "api"
    remove_on_complete: Any = None
    remove_on_fail: Any = None


class Lifecycle:
    def __init__(self, storage: Storage, broker: Broker, config: Config) -> None:
        self.storage = storage
        self.broker = broker
        self.config = config
        self.path = job_path(storage, broker, config)

    # --- producer side ---------------------------------------------------------------------

    def add(
        self,
        queue: Queue,
        items: Sequence[tuple[Any, str]],
        options: AddOptions,
        *,
        new_ids: bool = False,
    ) -> list[Job]:
        """Store and publish jobs; ids that already exist return the existing job untouched.
        ``new_ids``: the ids were just generated (``new_job_id``), so none can exist yet."""
        if options.depends_on:
            self._check_parents(options.depends_on)
        status = WAITING_CHILDREN if options.depends_on else (DELAYED if options.delay > 0 else WAITING)
        now = time.time()
        max_attempts = options.attempts or queue.retries.max + 1
        stored_options = _stored_options(options)
        records = new_records(
            items,
            queue=queue.name,
            status=status,
            options=stored_options,
            max_attempts=max_attempts,
            priority=options.priority,
            project=self.config.project,
            environment=self.config.environment,
            triggered_by=options.triggered_by,
            correlation_id=options.correlation_id,
            parent_ids=list(options.depends_on),
            run_at=now + options.delay if options.delay > 0 else None,
            now=now,
        )
        inserted = self.path.add(
            queue.name,
            records,
            publish=not options.depends_on,
            strategy=queue.publish_strategy,
            priority=options.priority,
            delay=options.delay,
            uniform=True,
            new_ids=new_ids,
        )
        if options.depends_on:
            for record, ok in zip(records, inserted, strict=True):
                if ok:
                    dag.link(self, record["id"], options.depends_on)
        existing = [r["id"] for r, ok in zip(records, inserted, strict=True) if not ok]
        found = dict(zip(existing, self.storage.get_jobs(existing), strict=True)) if existing else {}
        jobs = []
        for record, ok in zip(records, inserted, strict=True):
            current = record if ok else found.get(record["id"]) or record
            jobs.append(Job(current, self))
        return jobs

    def _check_parents(self, parent_ids: Sequence[str]) -> None:
        parents = self.storage.get_jobs(list(parent_ids))
        missing = [pid for pid, record in zip(parent_ids, parents, strict=True) if record is None]
        if missing:
            raise DependencyNotFound(f"depends_on: parent job(s) {', '.join(missing)} do not exist")

    def publish_waiting(self, record: Mapping[str, Any]) -> None:
        """Publish a record that is (now) waiting, with its own priority, under the strategy the
        broker remembers for its queue."""
        self.broker.publish(record["queue"], [record["id"]], priority=int(record.get("priority") or 0))

    def cancel(self, job_id: str, reason: str = "cancelled") -> bool:
        record = self.storage.get_job(job_id)
        if record is None or record["status"] in FINAL:
            return False
        changes = {
            "status": CANCELLED,
            "finished_at": time.time(),
            "lease_token": None,
            "error": {"type": "Cancelled", "message": reason},
        }
        allowed = [s for s in (WAITING, DELAYED, WAITING_CHILDREN, ACTIVE, "paused", "stalled")]
        entry = transition(record["status"], CANCELLED, reason)
        if not self.storage.update_job(job_id, changes, expect_status=allowed, append={"timeline": [entry]}):
            return False
        self.broker.remove(record["queue"], job_id)
        dag.parent_finished(self, {**record, **changes})
        return True

    def retry(self, job_id: str) -> bool:
        """Run a failed or cancelled job again with a fresh attempt count."""
        record = self.storage.get_job(job_id)
        if record is None or record["status"] not in (FAILED, CANCELLED):
            return False
        changes = {
            "status": WAITING,
            "attempts_made": 0,
            "stalled_count": 0,
            "error": None,
            "stacktrace": None,
            "finished_at": None,
            "queued_at": time.time(),
            "triggered_by": "retry",
        }
        entry = transition(record["status"], WAITING, "retried")
        if not self.storage.update_job(
            job_id, changes, expect_status=[record["status"]], append={"timeline": [entry]}
        ):
            return False
        self.publish_waiting(record)
        return True

    # --- consumer side ---------------------------------------------------------------------

    def claim(
        self,
        queues: Sequence[str],
        consumer: str,
        lease_ttl: float,
        timeout: float = 0.0,
        definitions: Mapping[str, Queue] | None = None,
    ) -> Claimed | None:
        """Lease the next runnable job and start its attempt (it is ``active`` when returned).

        ``consumer`` is also recorded as the job's worker. ``definitions`` give each queue's
        retry policy (the registry when omitted)."""
        return self.path.take(self.take_request(queues, consumer, lease_ttl, definitions), timeout)

    def claim_many(
        self, queues: Sequence[str], consumer: str, lease_ttl: float, count: int, timeout: float = 0.0
    ) -> list[Claimed]:
        """Like ``claim``, up to ``count`` jobs at once where the path takes batches."""
        return self.path.take_many(self.take_request(queues, consumer, lease_ttl), count, timeout)

    def take_request(
        self,
        queues: Sequence[str],
        consumer: str,
        lease_ttl: float,
        definitions: Mapping[str, Queue] | None = None,
    ) -> TakeRequest:
        if definitions is None:
            from .registry import registry

            definitions = registry.queues
        max_attempts = {
            name: (definitions[name].retries if name in definitions else DEFAULT_RETRIES).max + 1
            for name in queues
        }
        return TakeRequest(tuple(queues), consumer, lease_ttl, max_attempts)

    def update_progress(self, claimed: Claimed, percent: float, label: str | None) -> bool:
        changes = {"progress": percent, "progress_label": label}
        return self.storage.update_job(
            claimed.job_id, changes, expect={"lease_token": claimed.lease.token}
        )

    def append_log(self, claimed: Claimed, entry: Mapping[str, Any]) -> bool:
        return self.storage.update_job(
            claimed.job_id, {}, expect={"lease_token": claimed.lease.token}, append={"logs": [entry]}
        )

    def completion(self, claimed: Claimed, return_value: Any, queue: Queue | None = None) -> Ending:
        """The ending of a successful attempt: completed, acked."""
        now = time.time()
        changes = {
            "status": COMPLETED,
            "return_value": return_value,
            "finished_at": now,
            "progress": 100,
            "lease_token": None,
        }
        return Ending(claimed, changes, transition(ACTIVE, COMPLETED, "completed", now), True, 0.0, queue)

    def failure(
        self,
        claimed: Claimed,
        error: Mapping[str, Any],
        stacktrace: str | None,
        queue: Queue | None,
        retryable: bool = True,
    ) -> Ending:
        """The ending of a failed attempt: retried later if attempts remain (and it is
        retryable), else failed for good."""
        record = claimed.record
        retries = queue.retries if queue is not None else DEFAULT_RETRIES
        attempt = int(record.get("attempts_made") or 1)
        max_attempts = int(record.get("max_attempts") or retries.max + 1)
        now = time.time()
        if retryable and attempt < max_attempts:
            delay = retries.delay(attempt, (record.get("options") or {}).get("backoff"))
            status = DELAYED if delay > 0 else WAITING
            changes = {
                "status": status,
                "error": dict(error),
                "stacktrace": stacktrace,
                "lease_token": None,
                "run_at": now + delay,
                "queued_at": now,
            }
            reason = f"attempt {attempt} failed: {error.get('type')}; retry in {delay:.3g} s"
            return Ending(claimed, changes, transition(ACTIVE, status, reason, now), False, delay, queue)
        changes = {
            "status": FAILED,
            "error": dict(error),
            "stacktrace": stacktrace,
            "finished_at": now,
            "lease_token": None,
        }
        entry = transition(ACTIVE, FAILED, f"failed: {error.get('type')}", now)
        return Ending(claimed, changes, entry, True, 0.0, queue)

    def record(self, ending: Ending, then: TakeRequest | None = None, count: int = 1) -> list[Claimed]:
        """Write an ending and ack or nack; ``LeaseLost`` if the attempt no longer owns the job.
        With ``then``, also take up to ``count`` next jobs in the same step and return them."""
        children, taken = self.path.finish(ending, then=then, count=count)
        self._ended(ending, children)
        return taken

    def record_later(
        self, ending: Ending, refused: Callable[[Ending], None], then: TakeRequest | None = None,
        count: int = 1,
    ) -> None:
        """Write an ending without waiting for the reply where the path pipelines; what follows
        it (dependents, retention) runs when the reply is read, ``refused`` if it was refused.
        With ``then``, the next jobs are taken too: ``path.taken_ahead()`` hands them over."""

        def finished(children: list[str] | None) -> None:
            if children is None:
                refused(ending)
            else:
                self._ended(ending, children)

        self.path.finish_later(ending, finished, then, count)

    def _ended(self, ending: Ending, children: list[str]) -> None:
        if ending.ack:
            record = {**ending.claimed.record, **ending.changes, "children_ids": children}
            dag.children_of_finished(self, children)
            retention.apply(self.storage, record, ending.queue)

    # --- master side -----------------------------------------------------------------------

    def recover_lease(
        self, lease: Lease, error: Mapping[str, Any], queue: Queue | None, retryable: bool = True
    ) -> str | None:
        """The holder of ``lease`` died: fail its attempt through the retry path.

        A job the holder had claimed but not yet started is put back at once without using an
        attempt. Returns the job's new status (None when there was nothing to do).
        """
        record = self.storage.get_job(lease.job_id)
        if record is not None and record.get("corrupt"):
            self.path.fail_corrupt(lease, record)
            return FAILED
        if record is None or record["status"] in FINAL:
            self.path.drop(lease)
            return None
        if record.get("lease_token") != lease.token:
            try:
                self.broker.release(lease)
            except LeaseLost:
                return None
            return WAITING
        ending = self.failure(Claimed(lease, record), error, None, queue, retryable)
        try:
            self.record(ending)
        except LeaseLost:
            return None
        return ending.status

    def release_lease(self, lease: Lease, reason: str) -> bool:
        """Put a job back to waiting without charging an attempt: its worker was stopped by an
        operator (shutdown, reload), not by the job. Returns whether the job was requeued."""
        return self.path.release(lease, reason)

    def recover_expired(self, queue_name: str, queue: Queue | None, max_stalled: int) -> list[str]:
        """Put jobs whose lease deadline passed back to waiting (``stalled_count`` + 1), or fail
        them beyond ``max_stalled`` stalls. Returns the ids handled."""
        handled = []
        for lease in self.broker.expired_leases(queue_name):
            record = self.storage.get_job(lease.job_id)
            if record is None or record["status"] in FINAL:
                self.path.drop(lease)
                continue
            if record.get("lease_token") != lease.token:
                # Claimed but never started (the claimer died, or storage failed, in between):
                # nothing ran, so it goes back to its place without counting a stall.
                try:
                    self.broker.release(lease)
                except LeaseLost:
                    continue
                handled.append(lease.job_id)
                continue
            stalls = int(record.get("stalled_count") or 0) + 1
            now = time.time()
            if stalls > max_stalled:
                status, reason = FAILED, f"stalled {stalls} times (lease expired), max {max_stalled}"
                changes: dict[str, Any] = {
                    "status": FAILED,
                    "finished_at": now,
                    "error": {"type": "JobStalled", "message": reason},
                }
            else:
                status, reason = WAITING, f"stalled: lease expired (stall {stalls})"
                changes = {"status": WAITING, "queued_at": now}
            changes.update({"stalled_count": stalls, "lease_token": None, "worker_id": None})
            if not self.storage.update_job(
                lease.job_id,
                changes,
                expect={"lease_token": record.get("lease_token")},
                expect_status=[record["status"]],
                append={"timeline": [transition(record["status"], status, reason, now)]},
            ):
                continue
            try:
                if status == FAILED:
                    self.broker.ack(lease)
                else:
                    self.broker.nack(lease)
            except LeaseLost:
                continue
            if status == FAILED:
                dag.parent_finished(self, {**record, **changes})
            handled.append(lease.job_id)
        return handled


def _stored_options(options: AddOptions) -> dict[str, Any]:
    stored: dict[str, Any] = {}
    if options.priority:
        stored["priority"] = options.priority
    if options.delay:
        stored["delay"] = options.delay
    if options.attempts is not None:
        stored["attempts"] = options.attempts
    if options.backoff is not None:
        stored["backoff"] = options.backoff
    if options.depends_on:
        stored["on_parent_failure"] = options.on_parent_failure
    if options.remove_on_complete is not None:
        stored["remove_on_complete"] = options.remove_on_complete
    if options.remove_on_fail is not None:
        stored["remove_on_fail"] = options.remove_on_fail
    return stored
