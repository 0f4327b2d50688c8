"""How the contract suite builds each adapter. A new backend adds one entry per kind here."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from oqron.adapters.base import Broker, Lock, Storage
from oqron.adapters.memory import MemoryBroker, MemoryLock, MemoryStorage
from oqron.adapters.postgres import PostgresBroker, PostgresLock, PostgresStorage
from oqron.adapters.redis import RedisBroker, RedisLock, RedisStorage
from oqron.adapters.redis.redlock import RedlockLock
from oqron.adapters.sqlite import SqliteBroker, SqliteLock, SqliteStorage

Clock = Callable[[], float] | None


def sqlite_url(request: pytest.FixtureRequest) -> str:
    """One database file per test (every adapter of the test, any prefix, shares it)."""
    tmp_path = request.getfixturevalue("tmp_path")
    return f"sqlite:///{tmp_path / 'oqron.db'}"


def make_storage(backend: str, request: pytest.FixtureRequest, prefix: str) -> Storage:
    if backend == "memory":
        return MemoryStorage(prefix)
    if backend == "redis":
        return RedisStorage(request.getfixturevalue("redis_url"), prefix)
    if backend == "sqlite":
        return SqliteStorage(sqlite_url(request), prefix)
    if backend == "postgres":
        return PostgresStorage(request.getfixturevalue("pg_url"), prefix)
    raise ValueError(backend)


def make_broker(backend: str, request: pytest.FixtureRequest, prefix: str, clock: Clock = None) -> Broker:
    if backend == "memory":
        return MemoryBroker(prefix, clock=clock) if clock else MemoryBroker(prefix)
    if backend == "redis":
        return RedisBroker(request.getfixturevalue("redis_url"), prefix, clock=clock)
    if backend == "sqlite":
        return SqliteBroker(sqlite_url(request), prefix, clock=clock)
    if backend == "postgres":
        return PostgresBroker(request.getfixturevalue("pg_url"), prefix, clock=clock)
    raise ValueError(backend)


def make_lock(backend: str, request: pytest.FixtureRequest, prefix: str) -> Lock:
    if backend == "memory":
        return MemoryLock(prefix)
    if backend == "redis":
        return RedisLock(request.getfixturevalue("redis_url"), prefix)
    if backend == "sqlite":
        return SqliteLock(sqlite_url(request), prefix)
    if backend == "postgres":
        return PostgresLock(request.getfixturevalue("pg_url"), prefix)
    if backend == "redlock":
        return RedlockLock([s.url for s in request.getfixturevalue("redlock_servers")], prefix)
    raise ValueError(backend)


BACKENDS = ["memory", "sqlite", "redis", "postgres"]
LOCK_BACKENDS = [*BACKENDS, "redlock"]


def close_all(*adapters: Any) -> None:
    for adapter in adapters:
        adapter.close()
