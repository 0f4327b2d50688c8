"""How the contract suite builds each adapter. A new backend adds one entry per kind here."""

from __future__ import annotations

from typing import Any, Callable

import pytest

from oqron.adapters.base import Broker, Lock, Storage
from oqron.adapters.memory import MemoryBroker, MemoryLock, MemoryStorage
from oqron.adapters.postgres import PostgresBroker, PostgresLock, PostgresStorage
from oqron.adapters.redis import RedisBroker, RedisLock, RedisStorage

Clock = Callable[[], float] | None


def make_storage(backend: str, request: pytest.FixtureRequest, prefix: str) -> Storage:
    if backend == "memory":
        return MemoryStorage(prefix)
    if backend == "redis":
        return RedisStorage(request.getfixturevalue("redis_url"), prefix)
    if backend == "postgres":
        return PostgresStorage(request.getfixturevalue("pg_url"), prefix)
    raise ValueError(backend)


def make_broker(backend: str, request: pytest.FixtureRequest, prefix: str, clock: Clock = None) -> Broker:
    if backend == "memory":
        return MemoryBroker(prefix, clock=clock) if clock else MemoryBroker(prefix)
    if backend == "redis":
        return RedisBroker(request.getfixturevalue("redis_url"), prefix, clock=clock)
    if backend == "postgres":
        return PostgresBroker(request.getfixturevalue("pg_url"), prefix, clock=clock)
    raise ValueError(backend)


def make_lock(backend: str, request: pytest.FixtureRequest, prefix: str) -> Lock:
    if backend == "memory":
        return MemoryLock(prefix)
    if backend == "redis":
        return RedisLock(request.getfixturevalue("redis_url"), prefix)
    if backend == "postgres":
        return PostgresLock(request.getfixturevalue("pg_url"), prefix)
    raise ValueError(backend)


BACKENDS = ["memory", "redis", "postgres"]


def close_all(*adapters: Any) -> None:
    for adapter in adapters:
        adapter.close()
