"""Fixtures shared by the runtime and cluster tests: real oqron-master processes on real backends.

A conftest that imports these must define ``urls`` (the adapter URLs masters and producers share).
"""

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
