from __future__ import annotations

from collections.abc import Iterator

import pytest

from oqron.adapters.base import Broker, Lock, Storage
from tests.support.clock import FakeClock

from .backends import BACKENDS, LOCK_BACKENDS, make_broker, make_lock, make_storage


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def prefix(project: str) -> str:
    return f"oqron:{project}:test:"


@pytest.fixture
def storage(backend: str, request: pytest.FixtureRequest, prefix: str) -> Iterator[Storage]:
    adapter = make_storage(backend, request, prefix)
    yield adapter
    adapter.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def broker(backend: str, request: pytest.FixtureRequest, prefix: str) -> Iterator[Broker]:
    """A broker on the real clock."""
    adapter = make_broker(backend, request, prefix)
    yield adapter
    adapter.close()


@pytest.fixture
def timed_broker(
    backend: str, request: pytest.FixtureRequest, prefix: str, clock: FakeClock
) -> Iterator[Broker]:
    """A broker whose time moves only with ``clock.advance``."""
    adapter = make_broker(backend, request, prefix, clock=clock)
    yield adapter
    adapter.close()


@pytest.fixture(params=LOCK_BACKENDS)
def lock_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def lock(lock_backend: str, request: pytest.FixtureRequest, prefix: str) -> Iterator[Lock]:
    adapter = make_lock(lock_backend, request, prefix)
    yield adapter
    adapter.close()
