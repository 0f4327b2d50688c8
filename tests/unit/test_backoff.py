from __future__ import annotations

import pytest

from oqron import Retries
from oqron.errors import ConfigError


def test_fixed() -> None:
    assert [Retries(strategy="fixed", base_delay=3).delay(n) for n in (1, 2, 5)] == [3, 3, 3]


def test_exponential_with_jitter_and_cap() -> None:
    policy = Retries(strategy="exponential", base_delay=2, max_delay=60)
    for attempt, nominal in [(1, 2), (2, 4), (3, 8), (4, 16)]:
        for _ in range(50):
            assert nominal * 0.8 <= policy.delay(attempt) <= nominal * 1.2
    assert policy.delay(10) == 60


def test_callable_and_job_override() -> None:
    policy = Retries(strategy=lambda attempt: attempt * 10.0, max_delay=25)
    assert policy.delay(1) == 10 and policy.delay(3) == 25
    assert policy.delay(2, {"type": "fixed", "delay": 1.5}) == 1.5


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"max": -1}, "retries.max"), ({"strategy": "linear"}, "retries.strategy"),
     ({"base_delay": -2}, "retries.base_delay"), ({"max": True}, "retries.max")],
)
def test_invalid_policies(kwargs: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        Retries(**kwargs)
