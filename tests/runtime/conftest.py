"""Runtime tests run on every URL set: all Redis, all SQLite, and the hybrid production set."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.fixtures import counter, kit, runs_key, spawn_master  # noqa: F401 - fixtures

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
