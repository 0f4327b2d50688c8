"""Property test: the order in which a broker hands out jobs matches a reference model, under
any mix of priorities, delays, requeues and the passing of time, for every strategy."""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oqron.adapters.base import Broker, Lease, entry_score
from tests.support.clock import FakeClock

from .backends import make_broker

START = 1_700_000_000.0


@dataclass
class Model:
    """The specification of ordering, written as plainly as possible."""

    strategy: str
    seq: int = 0
    ready: dict[str, float] = field(default_factory=dict)
    delayed: dict[str, float] = field(default_factory=dict)
    priority: dict[str, int] = field(default_factory=dict)

    def enter_ready(self, job_id: str) -> None:
        self.seq += 1
        self.ready[job_id] = entry_score(self.strategy, self.seq, self.priority.get(job_id, 0))

    def claim(self, now: float) -> str | None:
        for job_id in sorted(self.delayed, key=lambda i: (self.delayed[i], i)):
            if self.delayed[job_id] <= now:
                del self.delayed[job_id]
                self.enter_ready(job_id)
        if not self.ready:
            return None
        job_id = min(self.ready, key=self.ready.__getitem__)
        del self.ready[job_id]
        return job_id


operations = st.lists(
    st.one_of(
        st.tuples(st.just("publish"), st.integers(0, 3), st.sampled_from([0, 0, 1, 5])),
        st.tuples(st.just("claim"), st.just(0), st.just(0)),
        st.tuples(st.just("nack"), st.integers(0, 20), st.sampled_from([0, 0, 2])),
        st.tuples(st.just("advance"), st.just(0), st.sampled_from([1, 3])),
    ),
    max_size=60,
)


@pytest.mark.parametrize("strategy", ["fifo", "lifo", "priority"])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=operations)
def test_claim_order_matches_model(
    backend: str, request: pytest.FixtureRequest, prefix: str, strategy: str, ops: list[tuple[str, int, int]]
) -> None:
    clock = FakeClock(START)
    broker: Broker = make_broker(backend, request, prefix, clock=clock)
    queue = f"q{uuid.uuid4().hex[:8]}"
    model = Model(strategy)
    held: list[Lease] = []
    ids = (f"j{n:04d}" for n in itertools.count())
    try:
        for op, arg, amount in ops:
            if op == "publish":
                job_id = next(ids)
                broker.publish(queue, [job_id], strategy=strategy, priority=arg, delay=amount)
                if arg:
                    model.priority[job_id] = arg
                if amount:
                    model.delayed[job_id] = clock() + amount
                else:
                    model.enter_ready(job_id)
            elif op == "claim":
                lease = broker.claim([queue], "c1", 3600)
                expected = model.claim(clock())
                assert (lease.job_id if lease else None) == expected
                if lease is not None:
                    held.append(lease)
            elif op == "nack" and held:
                lease = held.pop(arg % len(held))
                broker.nack(lease, delay=amount)
                if amount:
                    model.delayed[lease.job_id] = clock() + amount
                else:
                    model.enter_ready(lease.job_id)
            elif op == "advance":
                clock.advance(amount)
        clock.advance(100)
        while True:  # drain: the rest must come out in model order too, nothing stranded
            lease = broker.claim([queue], "c1", 3600)
            assert (lease.job_id if lease else None) == model.claim(clock())
            if lease is None:
                break
    finally:
        broker.obliterate(queue)
        broker.close()
