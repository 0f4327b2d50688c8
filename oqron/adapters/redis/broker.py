"""Redis broker: per queue a ready sorted set, a delayed sorted set and leases; Lua for every step.

Key layout under the prefix (all documented in the .lua headers):
``q:{queue}:ready|delayed|active|leases|prio|meta|marker``, ``consumer:{id}`` and ``lease_seq``.
A blocking claim waits with BZPOPMIN on the queues' marker sets, which every publish fills, so an
idle child costs one blocked connection and no CPU.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from ...errors import LeaseLost
from ..base import Broker, Lease
from .connection import MAX_BLOCK, RedisAdapter, translate_errors

PROMOTE_LIMIT = 1000
QUEUE_KEYS = ("ready", "delayed", "active", "leases", "prio", "meta", "marker")


class RedisBroker(RedisAdapter, Broker):
    """``clock`` (seconds) replaces the server clock, for tests that move time by hand."""

    scripts_used = ("publish", "claim", "finish", "renew", "expired", "remove", "drain")

    def __init__(self, url: str, prefix: str, clock: Callable[[], float] | None = None) -> None:
        super().__init__(url, prefix)
        self.clock = clock

    def _now(self) -> str:
        return "" if self.clock is None else str(int(self.clock() * 1000))

    def _key(self, queue: str, part: str) -> str:
        return f"{self.prefix}q:{queue}:{part}"

    def consumer_key(self, consumer: str) -> str:
        return f"{self.prefix}consumer:{consumer}"

    def queue_keys(self, queue: str) -> list[str]:
        """The queue's keys in the order the scripts' ``queue_keys`` expects."""
        return [self._key(queue, part) for part in QUEUE_KEYS]

    def marker_key(self, queue: str) -> str:
        return self._key(queue, "marker")

    @translate_errors
    def publish(
        self,
        queue: str,
        job_ids: Sequence[str],
        *,
        strategy: str | None = None,
        priority: int = 0,
        delay: float = 0.0,
    ) -> None:
        if not job_ids:
            return
        keys = self.queue_keys(queue)
        args = [strategy or "", priority, int(delay * 1000), self._now(), *job_ids]
        self.scripts["publish"](keys=keys, args=args)

    @translate_errors
    def claim(
        self, queues: Sequence[str], consumer: str, lease_ttl: float, timeout: float = 0.0
    ) -> Lease | None:
        keys = [self.consumer_key(consumer), f"{self.prefix}lease_seq"]
        for queue in queues:
            keys += self.queue_keys(queue)
        markers = [self._key(queue, "marker") for queue in queues]
        deadline = time.monotonic() + timeout
        while True:
            args = [consumer, int(lease_ttl * 1000), PROMOTE_LIMIT, self._now(), *queues]
            result = self.scripts["claim"](keys=keys, args=args)
            if result[0]:
                return Lease(result[0], result[1], result[2], consumer)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            next_due = int(result[1])
            wait = remaining if next_due < 0 else min(remaining, next_due / 1000 + 0.001)
            self.client.bzpopmin(markers, timeout=max(0.001, min(wait, MAX_BLOCK)))

    @translate_errors
    def renew(self, leases: Sequence[Lease], lease_ttl: float) -> list[Lease]:
        if not leases:
            return []
        keys: list[str] = []
        args: list[object] = [int(lease_ttl * 1000), self._now()]
        for lease in leases:
            keys += [self._key(lease.queue, "active"), self._key(lease.queue, "leases")]
            args += [lease.job_id, lease.token]
        lost = self.scripts["renew"](keys=keys, args=args)
        return [leases[int(i) - 1] for i in lost]

    def _finish(self, lease: Lease, action: str, delay: float) -> None:
        keys = [*self.queue_keys(lease.queue), self.consumer_key(lease.consumer)]
        args = [lease.job_id, lease.token, action, int(delay * 1000), lease.queue, self._now()]
        if not self.scripts["finish"](keys=keys, args=args):
            raise LeaseLost(f"lease {lease.token} on job {lease.job_id} is no longer current")

    @translate_errors
    def ack(self, lease: Lease) -> None:
        self._finish(lease, "ack", 0.0)

    @translate_errors
    def nack(self, lease: Lease, delay: float = 0.0) -> None:
        self._finish(lease, "nack", delay)

    @translate_errors
    def release(self, lease: Lease) -> None:
        self._finish(lease, "release", 0.0)

    @translate_errors
    def leases_of(self, consumer: str) -> list[Lease]:
        members = sorted(self.client.smembers(self.consumer_key(consumer)))
        pairs = [member.split("\t", 1) for member in members]
        pipe = self.client.pipeline(transaction=False)
        for queue, job_id in pairs:
            pipe.hget(self._key(queue, "leases"), job_id)
        leases = []
        for (queue, job_id), held in zip(pairs, pipe.execute(), strict=True):
            if held is not None:
                token, holder = held.split(" ", 1)
                if holder == consumer:
                    leases.append(Lease(queue, job_id, token, consumer))
        return leases

    @translate_errors
    def expired_leases(self, queue: str, limit: int = 1000) -> list[Lease]:
        keys = [self._key(queue, "active"), self._key(queue, "leases")]
        flat = self.scripts["expired"](keys=keys, args=[limit, self._now()])
        leases = []
        for job_id, held in zip(flat[::2], flat[1::2], strict=True):
            token, consumer = held.split(" ", 1)
            leases.append(Lease(queue, job_id, token, consumer))
        return leases

    @translate_errors
    def remove(self, queue: str, job_id: str) -> bool:
        keys = [self._key(queue, p) for p in ("ready", "delayed", "active", "leases", "prio")]
        args = [job_id, self.consumer_key(""), queue]
        return bool(self.scripts["remove"](keys=keys, args=args))

    @translate_errors
    def pause(self, queue: str) -> None:
        self.client.hset(self._key(queue, "meta"), "paused", "1")

    @translate_errors
    def resume(self, queue: str) -> None:
        pipe = self.client.pipeline(transaction=True)
        pipe.hdel(self._key(queue, "meta"), "paused")
        pipe.zadd(self._key(queue, "marker"), {"m": 0})
        pipe.execute()

    @translate_errors
    def is_paused(self, queue: str) -> bool:
        return bool(self.client.hget(self._key(queue, "meta"), "paused") == "1")

    @translate_errors
    def counts(self, queue: str) -> dict[str, int]:
        pipe = self.client.pipeline(transaction=False)
        for part in ("ready", "delayed", "active"):
            pipe.zcard(self._key(queue, part))
        waiting, delayed, active = pipe.execute()
        return {"waiting": waiting, "delayed": delayed, "active": active}

    @translate_errors
    def drain(self, queue: str) -> list[str]:
        keys = [self._key(queue, p) for p in ("ready", "delayed", "prio")]
        return list(self.scripts["drain"](keys=keys))

    @translate_errors
    def obliterate(self, queue: str) -> None:
        for lease in self._all_leases(queue):
            self.client.srem(self.consumer_key(lease.consumer), f"{queue}\t{lease.job_id}")
        self.client.delete(*self.queue_keys(queue))

    def _all_leases(self, queue: str) -> list[Lease]:
        leases = []
        for job_id, held in self.client.hgetall(self._key(queue, "leases")).items():
            token, consumer = held.split(" ", 1)
            leases.append(Lease(queue, job_id, token, consumer))
        return leases
