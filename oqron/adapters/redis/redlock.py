"""Redlock: a lock held on a majority of independent Redis servers.

With one Redis server the leader key dies with that server; with three or five independent
ones (``lock="redis://a,redis://b,redis://c"``) leadership survives the loss of a minority.
A lock counts as taken when a majority granted it and the time spent asking still leaves it
valid. Its fencing epoch is the largest of the granting servers' epochs: any two majorities
share a server, whose epoch rose when the lock changed hands, so epochs still only go up.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TypeVar

from ...errors import AdapterError
from ..base import Lock
from .lock import RedisLock

T = TypeVar("T")
#: How long one server may take to answer before it counts as a "no".
INSTANCE_TIMEOUT = 0.5


class RedlockLock(Lock):
    def __init__(self, urls: Sequence[str], prefix: str) -> None:
        if len(urls) < 3:
            raise ValueError("Redlock needs at least 3 independent Redis servers")
        self.prefix = prefix
        self.instances = [RedisLock(url, prefix, timeout=INSTANCE_TIMEOUT) for url in urls]
        self.quorum = len(urls) // 2 + 1

    def _each(self, call: Callable[[RedisLock], T]) -> list[T | None]:
        answers: list[T | None] = []
        for instance in self.instances:
            try:
                answers.append(call(instance))
            except AdapterError:
                answers.append(None)
        return answers

    def acquire(self, key: str, owner: str, ttl: float) -> int | None:
        started = time.monotonic()
        epochs = [e for e in self._each(lambda i: i.acquire(key, owner, ttl)) if e is not None]
        validity = ttl - (time.monotonic() - started) - (0.01 * ttl + 0.002)
        if len(epochs) >= self.quorum and validity > 0:
            return max(epochs)
        self._each(lambda i: i.release(key, owner))  # undo a minority grant at once
        return None

    def renew(self, key: str, owner: str, ttl: float) -> bool:
        started = time.monotonic()
        renewed = sum(1 for ok in self._each(lambda i: i.renew(key, owner, ttl)) if ok)
        return renewed >= self.quorum and time.monotonic() - started < ttl

    def release(self, key: str, owner: str) -> bool:
        """True if the owner held the lock on a majority. Its stale keys on a minority (servers
        where its TTL has not run out yet while another owner holds the majority) are removed
        too, but do not make it the lock's holder."""
        released = sum(1 for ok in self._each(lambda i: i.release(key, owner)) if ok)
        return released >= self.quorum

    def owner(self, key: str) -> str | None:
        owners = [o for o in self._each(lambda i: i.owner(key)) if o is not None]
        for candidate in set(owners):
            if owners.count(candidate) >= self.quorum:
                return candidate
        return None

    def epoch(self, key: str) -> int:
        return max((e for e in self._each(lambda i: i.epoch(key)) if e is not None), default=0)

    def reset_after_fork(self) -> None:
        for instance in self.instances:
            instance.reset_after_fork()

    def close(self) -> None:
        for instance in self.instances:
            instance.close()
