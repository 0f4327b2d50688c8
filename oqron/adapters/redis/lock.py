"""Redis lock on one instance: ``SET NX PX`` with an owner check, plus an epoch counter for fencing."""

from __future__ import annotations

from ..base import Lock
from .connection import RedisAdapter, translate_errors


class RedisLock(RedisAdapter, Lock):
    scripts_used = ("lock_acquire", "lock_renew")

    def _key(self, key: str) -> str:
        return f"{self.prefix}{key}"

    @translate_errors
    def acquire(self, key: str, owner: str, ttl: float) -> int | None:
        keys = [self._key(key), self._key(key) + ":epoch"]
        epoch = int(self.scripts["lock_acquire"](keys=keys, args=[owner, max(1, int(ttl * 1000))]))
        return None if epoch < 0 else epoch

    @translate_errors
    def renew(self, key: str, owner: str, ttl: float) -> bool:
        args = [owner, max(1, int(ttl * 1000))]
        return bool(self.scripts["lock_renew"](keys=[self._key(key)], args=args))

    @translate_errors
    def release(self, key: str, owner: str) -> bool:
        return bool(self.scripts["lock_renew"](keys=[self._key(key)], args=[owner, "release"]))

    @translate_errors
    def owner(self, key: str) -> str | None:
        holder = self.client.get(self._key(key))
        return holder if holder is None else str(holder)

    @translate_errors
    def epoch(self, key: str) -> int:
        return int(self.client.get(self._key(key) + ":epoch") or 0)
