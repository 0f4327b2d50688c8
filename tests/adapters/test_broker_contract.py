"""The Broker contract, run against every broker adapter."""

from __future__ import annotations

import threading
import time

import pytest

from oqron.adapters.base import Broker, Lease
from oqron.errors import LeaseLost
from tests.support.clock import FakeClock
from tests.support.wait import wait_for

TTL = 30.0


def claim_ids(broker: Broker, queues: list[str], n: int, consumer: str = "c1") -> list[str]:
    ids = []
    for _ in range(n):
        lease = broker.claim(queues, consumer, TTL)
        if lease is None:
            break
        ids.append(lease.job_id)
    return ids


def test_fifo_order(broker: Broker) -> None:
    broker.publish("q", ["a", "b"])
    broker.publish("q", ["c"])
    assert claim_ids(broker, ["q"], 4) == ["a", "b", "c"]


def test_lifo_order(broker: Broker) -> None:
    broker.publish("q", ["a", "b", "c"], strategy="lifo")
    assert claim_ids(broker, ["q"], 3) == ["c", "b", "a"]


def test_priority_order_ties_fifo(broker: Broker) -> None:
    broker.publish("q", ["p5a"], strategy="priority", priority=5)
    broker.publish("q", ["p1a", "p1b"], strategy="priority", priority=1)
    broker.publish("q", ["p0"], strategy="priority")
    broker.publish("q", ["p5b"], strategy="priority", priority=5)
    assert claim_ids(broker, ["q"], 5) == ["p0", "p1a", "p1b", "p5a", "p5b"]


def test_priority_jobs_stay_claimable_under_fifo(broker: Broker) -> None:
    broker.publish("q", ["a"], priority=7)
    broker.publish("q", ["b"])
    assert claim_ids(broker, ["q"], 3) == ["a", "b"]


def test_strategy_is_remembered_for_requeues(broker: Broker) -> None:
    broker.publish("q", ["low"], strategy="priority", priority=9)
    lease = broker.claim(["q"], "c1", TTL)
    assert lease is not None
    broker.publish("q", ["mid"], priority=5)  # strategy not given: the remembered one applies
    broker.nack(lease)
    assert claim_ids(broker, ["q"], 2) == ["mid", "low"]


def test_empty_claim_returns_none(broker: Broker) -> None:
    assert broker.claim(["q"], "c1", TTL) is None
    started = time.monotonic()
    assert broker.claim(["q"], "c1", TTL, timeout=0.2) is None
    assert time.monotonic() - started >= 0.19


def test_publish_is_idempotent_per_id(broker: Broker) -> None:
    broker.publish("q", ["a", "a", "b"])
    broker.publish("q", ["a"], delay=10)
    assert broker.counts("q") == {"waiting": 2, "delayed": 0, "active": 0}
    lease = broker.claim(["q"], "c1", TTL)
    assert lease is not None and lease.job_id == "a"
    broker.publish("q", ["a"])
    assert broker.counts("q") == {"waiting": 1, "delayed": 0, "active": 1}


def test_blocking_claim_wakes_on_publish(broker: Broker) -> None:
    got: list[Lease | None] = []
    thread = threading.Thread(target=lambda: got.append(broker.claim(["a", "b"], "c1", TTL, timeout=10)))
    thread.start()
    time.sleep(0.1)  # let the claim block (it must not return early either)
    assert not got
    published = time.monotonic()
    broker.publish("b", ["j1"])
    thread.join(5)
    assert got and got[0] is not None and got[0].job_id == "j1" and got[0].queue == "b"
    assert time.monotonic() - published < 0.5


def test_claim_prefers_queues_in_the_order_given(broker: Broker) -> None:
    broker.publish("low", ["l1"])
    broker.publish("high", ["h1"])
    assert claim_ids(broker, ["high", "low"], 2) == ["h1", "l1"]


def test_delayed_jobs_wait_for_their_time(timed_broker: Broker, clock: FakeClock) -> None:
    timed_broker.publish("q", ["later"], delay=5)
    timed_broker.publish("q", ["soon"], delay=1)
    timed_broker.publish("q", ["now"])
    assert claim_ids(timed_broker, ["q"], 3) == ["now"]
    assert timed_broker.counts("q")["delayed"] == 2
    clock.advance(1.5)
    assert claim_ids(timed_broker, ["q"], 3) == ["soon"]
    clock.advance(5)
    assert claim_ids(timed_broker, ["q"], 3) == ["later"]


def test_delayed_job_becomes_claimable_on_the_real_clock(broker: Broker) -> None:
    started = time.monotonic()  # before the publish: its own time (a commit under load) counts
    broker.publish("q", ["d"], delay=0.3)
    lease = broker.claim(["q"], "c1", TTL, timeout=5)
    assert lease is not None and lease.job_id == "d"
    assert 0.25 <= time.monotonic() - started < 2.0


@pytest.mark.parametrize(
    ("strategy", "published", "order"),
    [("fifo", ["a", "b", "c"], ["a", "b", "c"]), ("lifo", ["a", "b", "c"], ["c", "b", "a"])],
)
def test_released_jobs_go_back_to_the_head_of_their_queue(
    broker: Broker, strategy: str, published: list[str], order: list[str]
) -> None:
    """A job handed back without running (its worker stopped, or took it behind a long job)
    keeps its place; several handed back newest-taken first keep their order."""
    broker.publish("q", published, strategy=strategy)
    first = broker.claim(["q"], "c1", TTL)
    second = broker.claim(["q"], "c1", TTL)
    assert first is not None and second is not None
    broker.release(second)
    broker.release(first)
    assert claim_ids(broker, ["q"], 3) == order
    with pytest.raises(LeaseLost):
        broker.release(first)


def test_a_released_job_goes_back_to_the_head_of_its_priority(broker: Broker) -> None:
    broker.publish("q", ["p5a", "p5b"], strategy="priority", priority=5)
    broker.publish("q", ["p1a", "p1b"], strategy="priority", priority=1)
    first = broker.claim(["q"], "c1", TTL)
    assert first is not None and first.job_id == "p1a"
    held = [broker.claim(["q"], "c1", TTL) for _ in range(2)]
    assert [lease.job_id for lease in held if lease] == ["p1b", "p5a"]
    for lease in reversed(held):
        assert lease is not None
        broker.release(lease)
    broker.release(first)
    assert claim_ids(broker, ["q"], 4) == ["p1a", "p1b", "p5a", "p5b"]


def test_ack_needs_the_current_token(broker: Broker) -> None:
    broker.publish("q", ["a"])
    lease = broker.claim(["q"], "c1", TTL)
    assert lease is not None
    stale = Lease("q", "a", lease.token + "x", "c1")
    with pytest.raises(LeaseLost):
        broker.ack(stale)
    with pytest.raises(LeaseLost):
        broker.nack(stale)
    assert broker.counts("q")["active"] == 1
    broker.ack(lease)
    with pytest.raises(LeaseLost):
        broker.ack(lease)
    assert broker.counts("q") == {"waiting": 0, "delayed": 0, "active": 0}


def test_nack_requeues_now_or_later(timed_broker: Broker, clock: FakeClock) -> None:
    timed_broker.publish("q", ["a", "b"])
    lease = timed_broker.claim(["q"], "c1", TTL)
    assert lease is not None and lease.job_id == "a"
    timed_broker.nack(lease)
    assert claim_ids(timed_broker, ["q"], 1) == ["b"]
    lease = timed_broker.claim(["q"], "c1", TTL)
    assert lease is not None and lease.job_id == "a"
    timed_broker.nack(lease, delay=10)
    assert timed_broker.counts("q")["delayed"] == 1
    assert timed_broker.claim(["q"], "c1", TTL) is None
    clock.advance(10.5)
    assert claim_ids(timed_broker, ["q"], 1) == ["a"]


def test_renew_and_expiry(timed_broker: Broker, clock: FakeClock) -> None:
    timed_broker.publish("q", ["a", "b"])
    la = timed_broker.claim(["q"], "c1", 10)
    lb = timed_broker.claim(["q"], "c2", 10)
    assert la is not None and lb is not None
    clock.advance(8)
    stale = Lease("q", "b", "nope", "c2")
    assert timed_broker.renew([la, stale], 10) == [stale]
    clock.advance(5)
    expired = timed_broker.expired_leases("q")
    assert [(x.job_id, x.token, x.consumer) for x in expired] == [("b", lb.token, "c2")]


def test_expired_lease_can_be_requeued_and_old_token_is_refused(
    timed_broker: Broker, clock: FakeClock
) -> None:
    timed_broker.publish("q", ["a"])
    first = timed_broker.claim(["q"], "c1", 1)
    assert first is not None
    clock.advance(2)
    [expired] = timed_broker.expired_leases("q")
    timed_broker.nack(expired)
    second = timed_broker.claim(["q"], "c2", 10)
    assert second is not None and second.job_id == "a" and second.token != first.token
    with pytest.raises(LeaseLost):
        timed_broker.ack(first)
    timed_broker.ack(second)


def test_leases_of_consumer(broker: Broker) -> None:
    broker.publish("q1", ["a"])
    broker.publish("q2", ["b", "c"])
    la = broker.claim(["q1"], "child-1", TTL)
    lb = broker.claim(["q2"], "child-1", TTL)
    lc = broker.claim(["q2"], "child-2", TTL)
    assert set(broker.leases_of("child-1")) == {la, lb}
    assert broker.leases_of("child-2") == [lc]
    assert lb is not None
    broker.ack(lb)
    assert broker.leases_of("child-1") == [la]
    assert broker.leases_of("nobody") == []


def test_pause_and_resume(broker: Broker) -> None:
    broker.publish("q", ["a"])
    broker.pause("q")
    assert broker.is_paused("q")
    assert broker.claim(["q"], "c1", TTL) is None
    broker.publish("q", ["b"])
    assert broker.claim(["q"], "c1", TTL, timeout=0.1) is None
    got: list[Lease | None] = []
    thread = threading.Thread(target=lambda: got.append(broker.claim(["q"], "c1", TTL, timeout=10)))
    thread.start()
    time.sleep(0.1)
    broker.resume("q")
    thread.join(5)
    assert not broker.is_paused("q")
    assert got and got[0] is not None and got[0].job_id == "a"


def test_counts_drain_remove_obliterate(timed_broker: Broker, clock: FakeClock) -> None:
    timed_broker.publish("q", ["a", "b", "c"])
    timed_broker.publish("q", ["d"], delay=60)
    lease = timed_broker.claim(["q"], "c1", TTL)
    assert timed_broker.counts("q") == {"waiting": 2, "delayed": 1, "active": 1}
    assert timed_broker.remove("q", "b")
    assert not timed_broker.remove("q", "zzz")
    assert timed_broker.drain("q") == ["c", "d"]
    assert timed_broker.counts("q") == {"waiting": 0, "delayed": 0, "active": 1}
    timed_broker.pause("q")
    timed_broker.obliterate("q")
    assert timed_broker.counts("q") == {"waiting": 0, "delayed": 0, "active": 0}
    assert not timed_broker.is_paused("q")
    assert lease is not None
    assert timed_broker.leases_of("c1") == []
    with pytest.raises(LeaseLost):
        timed_broker.ack(lease)


def test_remove_a_leased_job(broker: Broker) -> None:
    broker.publish("q", ["a"])
    lease = broker.claim(["q"], "c1", TTL)
    assert lease is not None
    assert broker.remove("q", "a")
    assert broker.leases_of("c1") == []
    with pytest.raises(LeaseLost):
        broker.ack(lease)


def test_prefixes_are_isolated(
    broker: Broker, backend: str, request: pytest.FixtureRequest, prefix: str
) -> None:
    from .backends import make_broker

    other = make_broker(backend, request, prefix.replace(":test:", ":other:"))
    try:
        broker.publish("q", ["a"])
        assert other.claim(["q"], "c1", TTL) is None
        assert other.counts("q")["waiting"] == 0
        wait_for(lambda: broker.claim(["q"], "c1", TTL), 2, message="own claim")
    finally:
        other.close()
