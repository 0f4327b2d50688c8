"""In-process adapters: the reference implementation of the contracts, for unit tests and scripts.

Everything lives in dicts guarded by one lock per adapter; blocking claims wait on a condition
that publishes notify. Nothing crosses a process boundary, which is why ``oqron-master`` refuses
``memory://``.
"""

from __future__ import annotations

import copy
import heapq
import itertools
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import LeaseLost
from .base import APPEND_CAPS, Broker, Lease, Lock, Storage, entry_score

Clock = Callable[[], float]


class MemoryStorage(Storage):
    def __init__(self, prefix: str = "", clock: Clock = time.time) -> None:
        self.prefix = prefix
        self._clock = clock
        self._lock = threading.RLock()
        self._jobs: dict[str, dict[str, Any]] = {}
        self._status_time: dict[str, float] = {}
        self._created: dict[str, float] = {}
        self._docs: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
        self._queues: set[str] = set()

    def create_jobs(self, records: Sequence[Mapping[str, Any]]) -> list[bool]:
        with self._lock:
            inserted = []
            for record in records:
                job_id = record["id"]
                if job_id in self._jobs:
                    inserted.append(False)
                    continue
                self._jobs[job_id] = copy.deepcopy(dict(record))
                self._status_time[job_id] = self._created[job_id] = self._clock()
                self._queues.add(record["queue"])
                inserted.append(True)
            return inserted

    def get_job(self, job_id: str) -> dict[str, Any] | None:
        with self._lock:
            record = self._jobs.get(job_id)
            return copy.deepcopy(record) if record is not None else None

    def get_jobs(self, job_ids: Sequence[str]) -> list[dict[str, Any] | None]:
        return [self.get_job(job_id) for job_id in job_ids]

    def update_job(
        self,
        job_id: str,
        changes: Mapping[str, Any],
        *,
        expect: Mapping[str, Any] | None = None,
        expect_status: Sequence[str] | None = None,
        append: Mapping[str, Sequence[Any]] | None = None,
    ) -> bool:
        with self._lock:
            record = self._jobs.get(job_id)
            if record is None:
                return False
            if expect and any(record.get(k) != v for k, v in expect.items()):
                return False
            if expect_status is not None and record["status"] not in expect_status:
                return False
            if "status" in changes and changes["status"] != record["status"]:
                self._status_time[job_id] = self._clock()
            record.update(copy.deepcopy(dict(changes)))
            for name, entries in (append or {}).items():
                merged = list(record.get(name) or []) + copy.deepcopy(list(entries))
                record[name] = merged[-APPEND_CAPS.get(name, len(merged)) :]
            return True

    def _matching(self, queue: str | None, status: str | None) -> list[str]:
        return [
            job_id
            for job_id, record in self._jobs.items()
            if (queue is None or record["queue"] == queue)
            and (status is None or record["status"] == status)
        ]

    def list_jobs(
        self,
        queue: str | None = None,
        status: str | None = None,
        limit: int = 100,
        offset: int = 0,
        oldest_first: bool = False,
    ) -> list[dict[str, Any]]:
        with self._lock:
            ids = self._matching(queue, status)
            if status is None:
                ids.sort(key=lambda i: (self._created[i], i), reverse=not oldest_first)
            else:
                ids.sort(key=lambda i: (self._status_time[i], i), reverse=not oldest_first)
            return [copy.deepcopy(self._jobs[i]) for i in ids[offset : offset + limit]]

    def count_jobs(self, queue: str | None = None, status: str | None = None) -> int:
        with self._lock:
            return len(self._matching(queue, status))

    def queue_names(self) -> list[str]:
        with self._lock:
            return sorted(self._queues)

    def delete_jobs(self, job_ids: Sequence[str]) -> int:
        with self._lock:
            deleted = 0
            for job_id in job_ids:
                if self._jobs.pop(job_id, None) is not None:
                    self._status_time.pop(job_id, None)
                    self._created.pop(job_id, None)
                    deleted += 1
            return deleted

    def prune_jobs(
        self, queue: str, status: str, *, keep: int | None = None, older_than: float | None = None
    ) -> int:
        with self._lock:
            ids = sorted(self._matching(queue, status), key=lambda i: (self._status_time[i], i))
            doomed: set[str] = set()
            if keep is not None:
                doomed.update(ids[: max(0, len(ids) - keep)])
            if older_than is not None:
                cutoff = self._clock() - older_than
                doomed.update(i for i in ids if self._status_time[i] < cutoff)
            return self.delete_jobs(list(doomed))

    def put_doc(
        self,
        namespace: str,
        key: str,
        doc: Mapping[str, Any],
        *,
        expect: Mapping[str, Any] | None = None,
        fence: int | None = None,
    ) -> bool:
        with self._lock:
            stored = self._docs[namespace].get(key)
            if expect is not None and (
                stored is None or any(stored.get(k) != v for k, v in expect.items())
            ):
                return False
            new = copy.deepcopy(dict(doc))
            if fence is not None:
                if stored is not None and (stored.get("_fence") or 0) > fence:
                    return False
                new["_fence"] = fence
            self._docs[namespace][key] = new
            return True

    def get_doc(self, namespace: str, key: str) -> dict[str, Any] | None:
        with self._lock:
            doc = self._docs[namespace].get(key)
            return copy.deepcopy(doc) if doc is not None else None

    def delete_doc(self, namespace: str, key: str) -> bool:
        with self._lock:
            return self._docs[namespace].pop(key, None) is not None

    def list_docs(self, namespace: str) -> dict[str, dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(self._docs[namespace])


@dataclass
class _MemoryQueue:
    strategy: str = "fifo"
    paused: bool = False
    seq: int = 0
    ready: list[tuple[float, str]] = field(default_factory=list)  # heap, lazily cleaned
    ready_ids: dict[str, float] = field(default_factory=dict)
    delayed: list[tuple[float, str]] = field(default_factory=list)  # heap of (due, id)
    delayed_ids: dict[str, float] = field(default_factory=dict)
    leases: dict[str, tuple[str, str, float]] = field(default_factory=dict)  # id → token, consumer, deadline
    priorities: dict[str, int] = field(default_factory=dict)

    def make_ready(self, job_id: str, at_head: bool = False) -> None:
        self.seq += 1
        priority = self.priorities.get(job_id, 0)
        if at_head:
            rivals = [score for other, score in self.ready_ids.items()
                      if self.strategy != "priority" or self.priorities.get(other, 0) == priority]
            score = min(rivals) - 1 if rivals else entry_score(self.strategy, self.seq, priority)
        else:
            score = entry_score(self.strategy, self.seq, priority)
        self.ready_ids[job_id] = score
        heapq.heappush(self.ready, (score, job_id))

    def make_delayed(self, job_id: str, due: float) -> None:
        self.delayed_ids[job_id] = due
        heapq.heappush(self.delayed, (due, job_id))

    def promote_due(self, now: float) -> None:
        while self.delayed and self.delayed[0][0] <= now:
            due, job_id = heapq.heappop(self.delayed)
            if self.delayed_ids.get(job_id) == due:
                del self.delayed_ids[job_id]
                self.make_ready(job_id)

    def pop_ready(self) -> str | None:
        while self.ready:
            score, job_id = heapq.heappop(self.ready)
            if self.ready_ids.get(job_id) == score:
                del self.ready_ids[job_id]
                return job_id
        return None

    def next_due(self) -> float | None:
        while self.delayed and self.delayed_ids.get(self.delayed[0][1]) != self.delayed[0][0]:
            heapq.heappop(self.delayed)
        return self.delayed[0][0] if self.delayed else None

    def holds(self, job_id: str) -> bool:
        return job_id in self.ready_ids or job_id in self.delayed_ids or job_id in self.leases


class MemoryBroker(Broker):
    def __init__(self, prefix: str = "", clock: Clock = time.time) -> None:
        self.prefix = prefix
        self._clock = clock
        self._cond = threading.Condition(threading.RLock())
        self._queues: dict[str, _MemoryQueue] = defaultdict(_MemoryQueue)
        self._consumers: dict[str, set[tuple[str, str]]] = defaultdict(set)
        self._tokens = itertools.count(1)

    def publish(
        self,
        queue: str,
        job_ids: Sequence[str],
        *,
        strategy: str | None = None,
        priority: int = 0,
        delay: float = 0.0,
    ) -> None:
        with self._cond:
            q = self._queues[queue]
            q.strategy = strategy or q.strategy
            due = self._clock() + delay
            for job_id in job_ids:
                if q.holds(job_id):
                    continue
                if priority:
                    q.priorities[job_id] = priority
                if delay > 0:
                    q.make_delayed(job_id, due)
                else:
                    q.make_ready(job_id)
            self._cond.notify_all()

    def claim(
        self, queues: Sequence[str], consumer: str, lease_ttl: float, timeout: float = 0.0
    ) -> Lease | None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                lease, next_due = self._claim_once(queues, consumer, lease_ttl)
                remaining = deadline - time.monotonic()
                if lease is not None or remaining <= 0:
                    return lease
                if next_due is not None:
                    remaining = min(remaining, max(0.0, next_due - self._clock()) + 0.001)
                self._cond.wait(remaining)

    def _claim_once(
        self, queues: Sequence[str], consumer: str, lease_ttl: float
    ) -> tuple[Lease | None, float | None]:
        now = self._clock()
        next_due: float | None = None
        for name in queues:
            q = self._queues[name]
            if q.paused:
                continue
            q.promote_due(now)
            job_id = q.pop_ready()
            if job_id is not None:
                token = str(next(self._tokens))
                q.leases[job_id] = (token, consumer, now + lease_ttl)
                self._consumers[consumer].add((name, job_id))
                return Lease(name, job_id, token, consumer), None
            due = q.next_due()
            if due is not None and (next_due is None or due < next_due):
                next_due = due
        return None, next_due

    def _current(self, lease: Lease) -> _MemoryQueue:
        q = self._queues[lease.queue]
        held = q.leases.get(lease.job_id)
        if held is None or held[0] != lease.token:
            raise LeaseLost(f"lease {lease.token} on job {lease.job_id} is no longer current")
        return q

    def _drop_lease(self, q: _MemoryQueue, queue: str, job_id: str) -> None:
        _token, consumer, _ = q.leases.pop(job_id)
        self._consumers[consumer].discard((queue, job_id))
        if not self._consumers[consumer]:
            del self._consumers[consumer]

    def renew(self, leases: Sequence[Lease], lease_ttl: float) -> list[Lease]:
        lost = []
        with self._cond:
            deadline = self._clock() + lease_ttl
            for lease in leases:
                try:
                    q = self._current(lease)
                except LeaseLost:
                    lost.append(lease)
                    continue
                token, consumer, _ = q.leases[lease.job_id]
                q.leases[lease.job_id] = (token, consumer, deadline)
        return lost

    def ack(self, lease: Lease) -> None:
        with self._cond:
            q = self._current(lease)
            self._drop_lease(q, lease.queue, lease.job_id)
            q.priorities.pop(lease.job_id, None)

    def nack(self, lease: Lease, delay: float = 0.0) -> None:
        with self._cond:
            q = self._current(lease)
            self._drop_lease(q, lease.queue, lease.job_id)
            if delay > 0:
                q.make_delayed(lease.job_id, self._clock() + delay)
            else:
                q.make_ready(lease.job_id)
            self._cond.notify_all()

    def release(self, lease: Lease) -> None:
        with self._cond:
            q = self._current(lease)
            self._drop_lease(q, lease.queue, lease.job_id)
            q.make_ready(lease.job_id, at_head=True)
            self._cond.notify_all()

    def leases_of(self, consumer: str) -> list[Lease]:
        with self._cond:
            return [
                Lease(queue, job_id, self._queues[queue].leases[job_id][0], consumer)
                for queue, job_id in sorted(self._consumers.get(consumer, ()))
            ]

    def expired_leases(self, queue: str, limit: int = 1000) -> list[Lease]:
        with self._cond:
            now = self._clock()
            q = self._queues[queue]
            expired = sorted(
                (deadline, job_id, token, consumer)
                for job_id, (token, consumer, deadline) in q.leases.items()
                if deadline <= now
            )
            return [Lease(queue, job_id, token, holder) for _, job_id, token, holder in expired[:limit]]

    def remove(self, queue: str, job_id: str) -> bool:
        with self._cond:
            q = self._queues[queue]
            found = q.holds(job_id)
            q.ready_ids.pop(job_id, None)
            q.delayed_ids.pop(job_id, None)
            if job_id in q.leases:
                self._drop_lease(q, queue, job_id)
            q.priorities.pop(job_id, None)
            return found

    def pause(self, queue: str) -> None:
        with self._cond:
            self._queues[queue].paused = True

    def resume(self, queue: str) -> None:
        with self._cond:
            self._queues[queue].paused = False
            self._cond.notify_all()

    def is_paused(self, queue: str) -> bool:
        with self._cond:
            return self._queues[queue].paused

    def counts(self, queue: str) -> dict[str, int]:
        with self._cond:
            q = self._queues[queue]
            return {"waiting": len(q.ready_ids), "delayed": len(q.delayed_ids), "active": len(q.leases)}

    def drain(self, queue: str) -> list[str]:
        with self._cond:
            q = self._queues[queue]
            ids = sorted(q.ready_ids, key=q.ready_ids.__getitem__)
            ids += sorted(q.delayed_ids, key=lambda i: (q.delayed_ids[i], i))
            for job_id in ids:
                q.priorities.pop(job_id, None)
            q.ready_ids.clear()
            q.ready.clear()
            q.delayed_ids.clear()
            q.delayed.clear()
            return ids

    def obliterate(self, queue: str) -> None:
        with self._cond:
            q = self._queues.pop(queue, None)
            if q is not None:
                for job_id in list(q.leases):
                    self._drop_lease(q, queue, job_id)


class MemoryLock(Lock):
    def __init__(self, prefix: str = "", clock: Clock = time.monotonic) -> None:
        self.prefix = prefix
        self._clock = clock
        self._mutex = threading.Lock()
        self._held: dict[str, tuple[str, float]] = {}
        self._epochs: dict[str, int] = defaultdict(int)

    def _holder(self, key: str) -> str | None:
        held = self._held.get(key)
        if held is None or held[1] <= self._clock():
            return None
        return held[0]

    def acquire(self, key: str, owner: str, ttl: float) -> int | None:
        with self._mutex:
            holder = self._holder(key)
            if holder not in (None, owner):
                return None
            if holder is None:
                self._epochs[key] += 1
            self._held[key] = (owner, self._clock() + ttl)
            return self._epochs[key]

    def renew(self, key: str, owner: str, ttl: float) -> bool:
        with self._mutex:
            if self._holder(key) != owner:
                return False
            self._held[key] = (owner, self._clock() + ttl)
            return True

    def release(self, key: str, owner: str) -> bool:
        with self._mutex:
            if self._holder(key) != owner:
                return False
            del self._held[key]
            return True

    def owner(self, key: str) -> str | None:
        with self._mutex:
            return self._holder(key)

    def epoch(self, key: str) -> int:
        with self._mutex:
            return self._epochs[key]
