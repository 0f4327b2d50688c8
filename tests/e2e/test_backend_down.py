"""A backend that is down when a command starts: one clear line naming it, exit 1, at once.

A running master rides an outage out (tests/runtime/test_outages.py); at start there is nothing
to protect yet, so ``oqron-master`` and the admin commands check each backend once and stop.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.master import MASTER
from tests.support.ports import free_port

ADMIN = [sys.executable, "-c", "from oqron.cli import admin_main; admin_main()"]
ADMIN_COMMANDS = [
    ["enqueue", "q", "{}"], ["show", "j1"], ["jobs", "q"], ["stats"], ["retry", "j1"],
    ["cancel", "j1"], ["pause", "q"], ["resume", "q"], ["nodes"],
]


def down_redis() -> str:
    return f"redis://127.0.0.1:{free_port()}/0"


def down_postgres() -> str:
    return f"postgresql://postgres:secret@127.0.0.1:{free_port()}/x"


@pytest.fixture(params=["postgres", "redis", "hybrid-postgres-down", "hybrid-redis-down", "lock-down"])
def down(request: pytest.FixtureRequest, redis_url: str) -> tuple[dict[str, str], str]:
    """The URLs (as OQRON_* variables) with one backend unreachable, and the field named first."""
    if request.param == "postgres":
        urls, field = [down_postgres()] * 3, "storage"
    elif request.param == "redis":
        urls, field = [down_redis()] * 3, "storage"
    elif request.param == "hybrid-postgres-down":
        urls, field = [down_postgres(), redis_url, redis_url], "storage"
    elif request.param == "hybrid-redis-down":
        pg_url = request.getfixturevalue("pg_url")
        urls, field = [pg_url, down_redis(), down_redis()], "broker"
    else:
        pg_url = request.getfixturevalue("pg_url")
        urls, field = [pg_url, pg_url, down_redis()], "lock"
    env = {"OQRON_STORAGE": urls[0], "OQRON_BROKER": urls[1], "OQRON_LOCK": urls[2]}
    return env, field


def run(
    command: list[str], tmp_path: Path, env: dict[str, str]
) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=30,
                            env={**os.environ, "PYTHONPATH": str(tmp_path), **env})
    return result, time.monotonic() - started


def assert_one_clear_line(result: subprocess.CompletedProcess[str], elapsed: float, field: str,
                          env: dict[str, str]) -> None:
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    url = env[f"OQRON_{field.upper()}"].replace(":secret@", ":***@")
    assert f"cannot reach the backend: {field} {url}: " in lines[0], lines[0]
    assert "secret" not in result.stderr
    assert elapsed < 10, f"took {elapsed:.1f} s"


@pytest.mark.timeout(60)
def test_master_with_a_backend_down_exits_1_with_one_line(
    tmp_path: Path, down: tuple[dict[str, str], str]
) -> None:
    env, field = down
    (tmp_path / "app.py").write_text("from oqron import queue\nqueue('q').handler(lambda ctx: 1)\n")
    result, elapsed = run([sys.executable, str(MASTER), "--app", "app", "--workers", "1"], tmp_path, env)
    assert_one_clear_line(result, elapsed, field, env)
    assert result.stderr.startswith("oqron-master: ")


@pytest.mark.timeout(90)
@pytest.mark.parametrize("command", ADMIN_COMMANDS, ids=lambda c: c[0])
def test_admin_commands_with_postgres_down_exit_1_with_one_line(tmp_path: Path, command: list[str]) -> None:
    env = dict.fromkeys(("OQRON_STORAGE", "OQRON_BROKER", "OQRON_LOCK"), down_postgres())
    result, elapsed = run([*ADMIN, *command], tmp_path, env)
    assert_one_clear_line(result, elapsed, "storage", env)
    assert result.stderr.startswith(f"oqron {command[0]}: ")


@pytest.mark.timeout(60)
@pytest.mark.parametrize("command", [["stats"], ["enqueue", "q", "{}"]], ids=lambda c: c[0])
def test_admin_commands_with_redis_down_exit_1_with_one_line(
    tmp_path: Path, command: list[str], pg_url: str
) -> None:
    env = {"OQRON_STORAGE": pg_url, "OQRON_BROKER": down_redis(), "OQRON_LOCK": down_redis()}
    result, elapsed = run([*ADMIN, *command], tmp_path, env)
    assert_one_clear_line(result, elapsed, "broker", env)
