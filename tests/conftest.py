"""Fixtures shared by every test: a private Redis, isolated prefixes, a clean registry."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator

import pytest

from oqron.container import Container
from oqron.registry import registry
from tests.support.postgres import ScratchDatabase
from tests.support.redis_server import RedisServer

_prefix_numbers = itertools.count()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.close()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    return redis_server.url


@pytest.fixture(scope="session")
def redlock_servers() -> Iterator[list[RedisServer]]:
    """Three independent Redis servers for Redlock (tests may kill and restart them)."""
    servers = [RedisServer().start() for _ in range(3)]
    yield servers
    for server in servers:
        server.close()


@pytest.fixture(scope="session")
def pg_database() -> Iterator[ScratchDatabase]:
    """A scratch database for the session on ``OQRON_TEST_PG``; tests isolate by prefix."""
    import psycopg2

    try:
        database = ScratchDatabase().create()
    except psycopg2.OperationalError as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"PostgreSQL not reachable (scripts/test starts it): {exc}".strip())
    yield database
    database.drop()


@pytest.fixture
def pg_url(pg_database: ScratchDatabase) -> str:
    return pg_database.url


@pytest.fixture
def project() -> str:
    """A project name no other test uses, so every test has its own key prefix."""
    return f"t{os.getpid()}x{next(_prefix_numbers)}"


@pytest.fixture(autouse=True)
def clean_definitions() -> Iterator[None]:
    registry.clear()
    yield
    registry.clear()
    Container.reset()
