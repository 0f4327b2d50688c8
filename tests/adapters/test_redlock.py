"""Redlock keeps working while a minority of its servers is down, and refuses without a majority."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from oqron.adapters.redis.redlock import RedlockLock
from tests.support.redis_server import RedisServer


@pytest.fixture
def servers() -> Iterator[list[RedisServer]]:
    started = [RedisServer().start() for _ in range(3)]
    yield started
    for server in started:
        server.close()


def test_minority_down_majority_needed(servers: list[RedisServer], prefix: str) -> None:
    lock = RedlockLock([s.url for s in servers], prefix)
    first = lock.acquire("leader", "a", 5)
    assert first is not None
    servers[0].kill()
    assert lock.renew("leader", "a", 5)
    assert lock.owner("leader") == "a"
    assert lock.acquire("leader", "b", 5) is None
    assert lock.release("leader", "a")
    second = lock.acquire("leader", "b", 5)
    assert second is not None and second > first
    servers[1].kill()
    assert not lock.renew("leader", "b", 5)
    assert lock.acquire("other", "c", 5) is None
    lock.close()


def test_several_lock_urls_build_redlock(servers: list[RedisServer]) -> None:
    from oqron import ConfigError
    from oqron.adapters import build_lock

    assert isinstance(build_lock(",".join(s.url for s in servers), "oqron:p:e:"), RedlockLock)
    with pytest.raises(ConfigError, match="3 or more redis"):
        build_lock(f"{servers[0].url},{servers[1].url}", "oqron:p:e:")


def test_a_stale_minority_key_does_not_make_its_owner_the_holder(
    servers: list[RedisServer], prefix: str
) -> None:
    # The old owner's TTL runs out server by server: for a moment it still has its key on one
    # server while the new owner holds the other two, a majority.
    lock = RedlockLock([s.url for s in servers], prefix)
    assert lock.acquire("leader", "a", 30) is not None
    for server in servers[:2]:
        server.client().delete(f"{prefix}leader")  # expired there
    assert lock.acquire("leader", "b", 30) is not None
    assert lock.owner("leader") == "b"
    assert not lock.release("leader", "a")
    assert servers[2].client().get(f"{prefix}leader") is None  # its stale key went all the same
    assert lock.owner("leader") == "b"
    lock.close()
