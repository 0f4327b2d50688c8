"""What is particular to the SQLite adapters: URL forms, the files beside the database, errors."""

from __future__ import annotations

import os
import sqlite3
import tempfile
import threading
from pathlib import Path

import pytest

from oqron.adapters import build_broker, build_lock, build_storage
from oqron.adapters.sqlite import SqliteBroker, SqliteStorage, parse_url
from oqron.adapters.sqlite.wakeup import MAX_SOCKET_PATH, Doorbells
from oqron.errors import AdapterError, AdapterUnavailable, ConfigError

PREFIX = "oqron:files:test:"


def test_url_forms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert parse_url("sqlite:///oqron.db") == str(tmp_path / "oqron.db")
    assert parse_url("sqlite:///data/jobs.db") == str(tmp_path / "data" / "jobs.db")
    assert parse_url("sqlite:////var/lib/oqron/jobs.db") == "/var/lib/oqron/jobs.db"
    for bad in ("sqlite://", "sqlite:///", "sqlite://host/jobs.db", "sqlite:///:memory:", "redis://x"):
        with pytest.raises(ConfigError):
            parse_url(bad)


def test_the_default_url_builds_all_three_adapters_on_one_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    adapters = [build("sqlite:///oqron.db", PREFIX) for build in (build_storage, build_broker, build_lock)]
    try:
        adapters[1].publish("q", ["a"])  # type: ignore[attr-defined]
        assert adapters[0].count_jobs() == 0  # type: ignore[attr-defined]
        assert adapters[2].acquire("k", "me", 5) == 1  # type: ignore[attr-defined]
    finally:
        for adapter in adapters:
            adapter.close()
    assert (tmp_path / "oqron.db").exists()
    journal = sqlite3.connect(tmp_path / "oqron.db").execute("PRAGMA journal_mode").fetchone()[0]
    assert journal == "wal"


def test_a_missing_directory_is_a_clear_error(tmp_path: Path) -> None:
    storage = SqliteStorage(f"sqlite:///{tmp_path / 'missing' / 'x.db'}", PREFIX)
    with pytest.raises(AdapterUnavailable, match="unable to open"):
        storage.get_job("a")


def test_a_file_from_a_newer_schema_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    storage = SqliteStorage(url, PREFIX)
    storage.count_jobs()  # creates the schema
    storage.close()
    with sqlite3.connect(tmp_path / "x.db") as conn:
        conn.execute("UPDATE oqron_schema SET version = 99")
    storage = SqliteStorage(url, PREFIX)
    with pytest.raises(AdapterError, match="newer oqron"):
        storage.count_jobs()


@pytest.mark.parametrize("long_path", [False, True], ids=["short-path", "path-over-sun_path-limit"])
def test_bells_ring_at_any_directory_depth(long_path: bool) -> None:
    with tempfile.TemporaryDirectory(prefix="oq") as top:
        directory = Path(top) / ("d" * 120 if long_path else "")
        directory.mkdir(exist_ok=True)
        ring_and_wake(Doorbells(str(directory / "x.db-oqron"), PREFIX), long_path)


def ring_and_wake(bells: Doorbells, long_path: bool) -> None:
    bell = bells.listen()
    try:
        names = os.listdir(bells.directory)
        assert len(names) == 1
        too_long = len(os.path.join(bells.directory, names[0])) > MAX_SOCKET_PATH
        assert too_long == long_path
        assert not bell.wait(0.01)
        bells.ring()
        assert bell.wait(1.0)
        assert not bell.wait(0.01)  # one ring wakes once
    finally:
        bell.close()
        bells.close()
    assert os.listdir(bells.directory) == []


def test_other_prefixes_are_not_rung(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    ours, theirs = SqliteBroker(url, PREFIX), SqliteBroker(url, PREFIX + "other:")
    try:
        assert ours.bells.directory != theirs.bells.directory
        bell = ours.bells.listen()
        theirs.publish("q", ["a"])
        assert not bell.wait(0.05)
        bell.close()
    finally:
        ours.close()
        theirs.close()


def test_threads_share_one_adapter(tmp_path: Path) -> None:
    broker = SqliteBroker(f"sqlite:///{tmp_path / 'x.db'}", PREFIX)
    broker.publish("q", [f"j{i}" for i in range(400)])
    claimed: list[str] = []

    def consume() -> None:
        while (lease := broker.claim(["q"], threading.current_thread().name, 30.0)) is not None:
            broker.ack(lease)
            claimed.append(lease.job_id)

    threads = [threading.Thread(target=consume) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    broker.close()
    assert sorted(claimed) == sorted(f"j{i}" for i in range(400))
