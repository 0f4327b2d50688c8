"""The Lock contract, run against every lock adapter."""

from __future__ import annotations

import time

from oqron.adapters.base import Lock
from tests.support.wait import wait_for


def test_acquire_is_exclusive_and_reentrant(lock: Lock) -> None:
    epoch = lock.acquire("leader", "node-a", 5)
    assert epoch is not None and epoch >= 1
    assert lock.acquire("leader", "node-b", 5) is None
    assert lock.acquire("leader", "node-a", 5) == epoch
    assert lock.owner("leader") == "node-a"
    assert lock.is_owner("leader", "node-a")
    assert not lock.is_owner("leader", "node-b")
    assert lock.epoch("leader") == epoch


def test_release_only_by_owner(lock: Lock) -> None:
    first = lock.acquire("k", "a", 5)
    assert not lock.release("k", "b")
    assert lock.owner("k") == "a"
    assert lock.release("k", "a")
    assert lock.owner("k") is None
    second = lock.acquire("k", "b", 5)
    assert first is not None and second is not None and second > first


def test_renew_only_by_owner(lock: Lock) -> None:
    lock.acquire("k", "a", 5)
    assert lock.renew("k", "a", 5)
    assert not lock.renew("k", "b", 5)
    assert not lock.renew("free", "a", 5)


def test_expiry_hands_the_lock_over_with_a_higher_epoch(lock: Lock) -> None:
    first = lock.acquire("k", "a", 0.5)  # Redlock spends part of a TTL asking 3 servers
    assert first is not None
    wait_for(lambda: lock.owner("k") is None, 3, message="lock expiry")
    assert not lock.renew("k", "a", 5)
    second = lock.acquire("k", "b", 5)
    assert second is not None and second > first
    assert not lock.release("k", "a")


def test_renew_keeps_the_lock_alive(lock: Lock) -> None:
    lock.acquire("k", "a", 0.3)
    for _ in range(4):
        time.sleep(0.1)
        assert lock.renew("k", "a", 0.3)
    assert lock.owner("k") == "a"


def test_keys_are_independent(lock: Lock) -> None:
    assert lock.acquire("k1", "a", 5) is not None
    assert lock.acquire("k2", "b", 5) is not None
    assert lock.epoch("never") == 0
    assert lock.owner("never") is None
