"""The example jobs module, unchanged, on every URL set, driven by the CLI as a user would."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.master import ROOT, MasterProcess

SETS = ["sqlite-default", "redis", "postgres", "hybrid"]


@pytest.fixture(params=SETS)
def url_env(request: pytest.FixtureRequest, project: str) -> dict[str, str]:
    env = {"OQRON_PROJECT": project}
    if request.param == "sqlite-default":
        return env  # no URLs at all: the embedded default, ./oqron.db
    redis_url = request.getfixturevalue("redis_url")
    if request.param == "redis":
        urls = [redis_url] * 3
    else:
        pg_url = request.getfixturevalue("pg_url")
        urls = [pg_url] * 3 if request.param == "postgres" else [pg_url, redis_url, redis_url]
    return {**env, "OQRON_STORAGE": urls[0], "OQRON_BROKER": urls[1], "OQRON_LOCK": urls[2]}


def oqron(workdir: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-c", "from oqron.cli import admin_main; admin_main()", *args]
    return subprocess.run(command, cwd=workdir, env={**os.environ, **env, "PYTHONPATH": str(workdir)},
                          capture_output=True, text=True, timeout=60)


@pytest.mark.timeout(120)
def test_example_module_runs_on_every_url_set(tmp_path: Path, url_env: dict[str, str]) -> None:
    shutil.copy(ROOT / "examples" / "jobs.py", tmp_path / "jobs.py")
    source = (tmp_path / "jobs.py").read_text()
    master = MasterProcess(tmp_path, source, url_env, "--workers", "2", module="jobs").start()
    try:
        master.wait_workers(2)
        sent = oqron(tmp_path, url_env, "enqueue", "emails", '{"to": "a@example.com"}', "--wait", "20")
        assert sent.returncode == 0, sent.stderr
        assert json.loads(sent.stdout) == {"sent": True, "to": "a@example.com"}
        report = oqron(tmp_path, url_env, "enqueue", "reports", '{"rows": 7, "seconds": 0}', "--wait", "20")
        assert json.loads(report.stdout) == {"rows": 7}
        stats = oqron(tmp_path, url_env, "stats")
        assert "emails\t0\t0\t0\t1\t0\t0\tno" in stats.stdout
        bad = oqron(tmp_path, url_env, "enqueue", "emails", "{not json")
        assert bad.returncode == 1 and bad.stderr.startswith("oqron enqueue: data: expected JSON")
        nodes = oqron(tmp_path, url_env, "nodes")
        assert str(master.pid) in nodes.stdout
        master.send(signal.SIGTERM)
        assert master.wait_exit(30) == 0
    finally:
        master.stop()
    if "OQRON_STORAGE" not in url_env:
        assert (tmp_path / "oqron.db").exists()
