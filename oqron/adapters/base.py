"""The three adapter contracts: ``Storage`` (job records), ``Broker`` (ids, order, leases) and ``Lock``.

Every adapter is built with the isolation prefix ``oqron:{project}:{environment}:`` and applies it
to every key, row and lock it touches: two prefixes never see each other's data. Adapters open
their connections lazily and again after a fork (``reset_after_fork``), so a master can build
them, fork, and let each child talk to the backend on its own sockets.

The contract suite in ``tests/adapters/`` runs against every implementation; a docstring here is
what that suite checks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

STRATEGIES = ("fifo", "lifo", "priority")
MAX_PRIORITY = 2**20 - 1
#: Appended lists are capped: oldest entries are dropped beyond these lengths.
APPEND_CAPS = {"timeline": 100, "logs": 200, "children_ids": 100_000}


@dataclass(frozen=True)
class Lease:
    """A claimed job: which queue, which job, the token that proves the claim is current, and
    the consumer (child) that holds it."""

    queue: str
    job_id: str
    token: str
    consumer: str


def entry_score(strategy: str, seq: int, priority: int) -> float:
    """Sort key of a ready job: lowest is claimed first.

    ``seq`` rises every time a job becomes ready (publish, promotion of a due delayed job,
    requeue). fifo takes the oldest entry, lifo the newest, priority the lowest number with ties
    in entry order. Priorities fit in 20 bits and ``seq`` in 33 bits, so the score is an exact
    integer in a double (Redis sorted-set scores are doubles).
    """
    if strategy == "lifo":
        return float(-seq)
    if strategy == "priority":
        return float(priority * 2**33 + seq)
    return float(seq)


class Storage:
    """Job records and small documents.

    A job record is a dict of JSON values with at least ``id``, ``queue`` and ``status``.
    Records are indexed by (queue, status) in order of the time they entered their status, so
    listing, counting and pruning never scan unrelated jobs.
    """

    def create_jobs(self, records: Sequence[Mapping[str, Any]]) -> list[bool]:
        """Insert records whose id is not present yet, in one round trip.

        Returns one flag per record: True if inserted, False if a record with that id already
        existed (it is left untouched: this is what makes ``job_id`` idempotent).
        """
        raise NotImplementedError

    def get_job(self, job_id: str) -> dict[str, Any] | None:
        """The record, or None when there is no job with that id.

        A record that cannot be decoded (damaged outside oqron) never raises: it comes back
        with what could be read (at least ``id``, ``queue``, ``status``) plus ``corrupt``, a
        text saying what was wrong. The same holds for ``get_jobs`` and ``list_jobs``.
        """
        raise NotImplementedError

    def get_jobs(self, job_ids: Sequence[str]) -> list[dict[str, Any] | None]:
        """Several records in one round trip, None for missing ids, in the order asked."""
        raise NotImplementedError

    def update_job(
        self,
        job_id: str,
        changes: Mapping[str, Any],
        *,
        expect: Mapping[str, Any] | None = None,
        expect_status: Sequence[str] | None = None,
        append: Mapping[str, Sequence[Any]] | None = None,
    ) -> bool:
        """Atomically set ``changes`` and append entries to list fields (capped by APPEND_CAPS).

        The update happens only if the record exists, every ``expect`` field equals the given
        value (a missing field equals None) and, when ``expect_status`` is given, the current
        status is one of them. Returns whether it happened. A status change moves the record in
        the (queue, status) index, stamped with the time of the change. On an undecodable
        record the changes apply over what could be read (so such a job can still be failed).
        """
        raise NotImplementedError

    def list_jobs(
        self,
        queue: str | None = None,
        status: str | None = None,
        limit: int = 100,
        offset: int = 0,
        oldest_first: bool = False,
    ) -> list[dict[str, Any]]:
        """Records newest first (or oldest first): ordered by the time they entered their status
        when ``status`` is given, by creation time otherwise."""
        raise NotImplementedError

    def count_jobs(self, queue: str | None = None, status: str | None = None) -> int:
        """How many records match; served by the indexes, not by reading records."""
        raise NotImplementedError

    def queue_names(self) -> list[str]:
        """Every queue that has ever had a record under this prefix, sorted."""
        raise NotImplementedError

    def delete_jobs(self, job_ids: Sequence[str]) -> int:
        """Delete records and their index entries; returns how many existed."""
        raise NotImplementedError

    def prune_jobs(
        self, queue: str, status: str, *, keep: int | None = None, older_than: float | None = None
    ) -> int:
        """Delete records of one queue and status: all but the ``keep`` newest, and/or those that
        entered the status more than ``older_than`` seconds ago. Returns how many were deleted."""
        raise NotImplementedError

    def put_doc(
        self,
        namespace: str,
        key: str,
        doc: Mapping[str, Any],
        *,
        expect: Mapping[str, Any] | None = None,
        fence: int | None = None,
    ) -> bool:
        """Store a small JSON document (schedules, node registry, ...), replacing any old one.

        With ``expect``, write only if a document exists and each given field equals its
        value (compare-and-set). With ``fence``, write only if the stored document's ``_fence``
        field is absent or <= ``fence``, and stamp the new document with ``_fence = fence``: a
        writer holding an older leadership epoch can no longer overwrite a newer one's write.
        Returns whether the document was written.
        """
        raise NotImplementedError

    def get_doc(self, namespace: str, key: str) -> dict[str, Any] | None:
        raise NotImplementedError

    def delete_doc(self, namespace: str, key: str) -> bool:
        raise NotImplementedError

    def list_docs(self, namespace: str) -> dict[str, dict[str, Any]]:
        """Every document of a namespace, by key."""
        raise NotImplementedError

    def reset_after_fork(self) -> None:
        """Drop connections inherited from the parent; the next call opens new ones."""

    def close(self) -> None:
        """Release connections and files."""


class Broker:
    """Which jobs are ready, in which order, and who holds a lease on which job.

    Queues order ready jobs by ``entry_score`` under the strategy recorded at publish time.
    Delayed jobs become ready at their time, promoted atomically with a claim. A claim leases
    the job to a consumer until a deadline; ack/nack/renew must present the lease token, and a
    stale token raises ``LeaseLost`` and changes nothing. Times are the backend's clock.
    """

    #: True when ``claim(timeout > 0)`` blocks on the backend instead of polling.
    blocking = True

    def publish(
        self,
        queue: str,
        job_ids: Sequence[str],
        *,
        strategy: str | None = None,
        priority: int = 0,
        delay: float = 0.0,
    ) -> None:
        """Make jobs ready now (``delay == 0``) or after ``delay`` seconds, in the given order.

        Publishing an id that is already queued, delayed or leased moves nothing (no duplicate).
        ``strategy`` is remembered for the queue and used by every later entry (requeues,
        promotions); None keeps the remembered one (fifo if none). ``priority`` is remembered
        per job for its requeues.
        """
        raise NotImplementedError

    def claim(
        self, queues: Sequence[str], consumer: str, lease_ttl: float, timeout: float = 0.0
    ) -> Lease | None:
        """Lease the first ready job of the first queue (in the order given) that has one.

        Promotes due delayed jobs first, skips paused queues, records the lease under
        ``consumer``. With ``timeout > 0`` waits up to that long for a job to appear, woken by
        publishes (no busy polling). Returns None when nothing was claimable.
        """
        raise NotImplementedError

    def renew(self, leases: Sequence[Lease], lease_ttl: float) -> list[Lease]:
        """Push back the deadline of many leases at once; returns the ones no longer current."""
        raise NotImplementedError

    def ack(self, lease: Lease) -> None:
        """The job is finished: drop the lease and forget the job. ``LeaseLost`` if stale."""
        raise NotImplementedError

    def nack(self, lease: Lease, delay: float = 0.0) -> None:
        """Give the job back: ready again now, or delayed by ``delay``. ``LeaseLost`` if stale."""
        raise NotImplementedError

    def release(self, lease: Lease) -> None:
        """Hand back a job that did not run (its worker stopped, or took it behind a long job):
        ready again at the head of its queue, where it was: its score is just below the lowest
        of the ready jobs it competes with (those of its priority, under ``priority``), or an
        ordinary entry when there are none. Jobs handed back newest-taken first keep their
        order. ``LeaseLost`` if stale."""
        raise NotImplementedError

    def leases_of(self, consumer: str) -> list[Lease]:
        """The current leases held by a consumer (a child), including one it took just now."""
        raise NotImplementedError

    def expired_leases(self, queue: str, limit: int = 1000) -> list[Lease]:
        """Leases of ``queue`` whose deadline has passed (their holder died or hung)."""
        raise NotImplementedError

    def remove(self, queue: str, job_id: str) -> bool:
        """Take a job out of the queue wherever it is (ready, delayed or leased)."""
        raise NotImplementedError

    def pause(self, queue: str) -> None:
        """Stop claims from ``queue`` (persistent, seen by every process)."""
        raise NotImplementedError

    def resume(self, queue: str) -> None:
        raise NotImplementedError

    def is_paused(self, queue: str) -> bool:
        raise NotImplementedError

    def counts(self, queue: str) -> dict[str, int]:
        """``{"waiting": n, "delayed": n, "active": n}`` as the broker sees them."""
        raise NotImplementedError

    def drain(self, queue: str) -> list[str]:
        """Remove every ready and delayed job (not leased ones); returns their ids."""
        raise NotImplementedError

    def obliterate(self, queue: str) -> None:
        """Remove every trace of the queue: ready, delayed, leases, pause flag, strategy."""
        raise NotImplementedError

    def reset_after_fork(self) -> None:
        """Drop connections inherited from the parent; the next call opens new ones."""

    def close(self) -> None:
        """Release connections and files."""


class Lock:
    """Named locks with a TTL and an owner, for leader election and one-at-a-time work.

    ``acquire`` returns a fencing epoch that rises every time the lock changes hands, so a
    deposed holder's late writes can be refused by comparing epochs.
    """

    def acquire(self, key: str, owner: str, ttl: float) -> int | None:
        """Take the lock if free or expired, or extend it if ``owner`` already holds it.

        Returns the lock's epoch on success (unchanged when extended, higher when newly taken),
        None when someone else holds it.
        """
        raise NotImplementedError

    def renew(self, key: str, owner: str, ttl: float) -> bool:
        """Extend the TTL only if ``owner`` still holds the lock."""
        raise NotImplementedError

    def release(self, key: str, owner: str) -> bool:
        """Free the lock only if ``owner`` holds it."""
        raise NotImplementedError

    def owner(self, key: str) -> str | None:
        """The current holder, or None when the lock is free or expired."""
        raise NotImplementedError

    def epoch(self, key: str) -> int:
        """The latest epoch handed out for ``key`` (0 if never taken)."""
        raise NotImplementedError

    def is_owner(self, key: str, owner: str) -> bool:
        return self.owner(key) == owner

    def reset_after_fork(self) -> None:
        """Drop connections inherited from the parent; the next call opens new ones."""

    def close(self) -> None:
        """Release connections and files."""
