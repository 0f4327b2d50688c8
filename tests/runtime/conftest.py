"""Fixtures for runtime tests: real oqron-master processes on real backends."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from oqron import Container, OqronKit, define_config
from tests.support.master import MasterProcess

#: Shared by every test app: handlers count their runs in Redis, per job id.
APP_HEADER = """
import os, time, redis
from oqron import queue, Retries
_r = redis.Redis.from_url(os.environ["TEST_REDIS"], decode_responses=True)

def ran(ctx, value=None):
    _r.hincrby(os.environ["TEST_RUNS"], ctx.id, 1)
    return value
"""


RUNTIME_BACKENDS = ["redis", "sqlite", "hybrid"]


@pytest.fixture(params=RUNTIME_BACKENDS)
def urls(request: pytest.FixtureRequest, redis_url: str, tmp_path: Path) -> dict[str, str]:
    """The adapter URLs a test's masters and producers share: every runtime test runs on each."""
    if request.param == "redis":
        return {"storage": redis_url, "broker": redis_url, "lock": redis_url}
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/oqron.db"
        return {"storage": url, "broker": url, "lock": url}
    if request.param == "hybrid":  # the production set: PostgreSQL storage, Redis broker and lock
        return {"storage": request.getfixturevalue("pg_url"), "broker": redis_url, "lock": redis_url}
    raise ValueError(request.param)


@pytest.fixture
def kit(urls: dict[str, str], project: str) -> Iterator[Container]:
    container = OqronKit.init(define_config(project=project, **urls))
    yield container
    OqronKit.stop()


@pytest.fixture
def runs_key(project: str) -> str:
    return f"test-runs:{project}"


@pytest.fixture
def counter(redis_url: str, runs_key: str) -> Callable[[], dict[str, int]]:
    """Runs per job id, as counted by the handlers."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)

    def read() -> dict[str, int]:
        return {k: int(v) for k, v in client.hgetall(runs_key).items()}

    return read


@pytest.fixture
def spawn_master(
    tmp_path: Path, urls: dict[str, str], project: str, redis_url: str, runs_key: str
) -> Iterator[Callable[..., MasterProcess]]:
    started: list[MasterProcess] = []

    def spawn(app_body: str, *args: str, env: dict[str, str] | None = None) -> MasterProcess:
        environment = {
            "OQRON_STORAGE": urls["storage"], "OQRON_BROKER": urls["broker"], "OQRON_LOCK": urls["lock"],
            "OQRON_PROJECT": project, "TEST_REDIS": redis_url, "TEST_RUNS": runs_key,
            **(env or {}),
        }
        master = MasterProcess(tmp_path, APP_HEADER + app_body, environment, *args)
        started.append(master.start())
        return master

    yield spawn
    for master in started:
        master.stop()
