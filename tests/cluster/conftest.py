"""Cluster tests start several oqron-master processes on the same backends, for each lock set."""

from __future__ import annotations

import re

import pytest

from tests.support.fixtures import counter, kit, runs_key, spawn_master  # noqa: F401 - fixtures
from tests.support.master import title
from tests.support.redis_server import RedisServer

CLUSTER_SETS = ["redis", "postgres", "redlock"]


@pytest.fixture(params=CLUSTER_SETS)
def urls(request: pytest.FixtureRequest, redis_url: str) -> dict[str, str]:
    """redis: everything on one Redis. postgres: PostgreSQL storage and lock (advisory locks),
    Redis broker. redlock: Redis storage and broker, Redlock over 3 independent servers."""
    if request.param == "redis":
        return {"storage": redis_url, "broker": redis_url, "lock": redis_url}
    if request.param == "postgres":
        pg_url = request.getfixturevalue("pg_url")
        return {"storage": pg_url, "broker": redis_url, "lock": pg_url}
    if request.param == "redlock":
        servers: list[RedisServer] = request.getfixturevalue("redlock_servers")
        return {"storage": redis_url, "broker": redis_url, "lock": ",".join(s.url for s in servers)}
    raise ValueError(request.param)


def leader_shards(pid: int) -> set[int]:
    """The shards a master's title says it leads (shard 0 for a plain 'leader')."""
    text = title(pid)
    found = re.search(r" leader shards ([\d,]+)$", text)
    if found:
        return {int(s) for s in found.group(1).split(",")}
    return {0} if text.endswith(" leader") else set()
