"""The Storage contract, run against every storage adapter."""

from __future__ import annotations

import time

import pytest

from oqron.adapters.base import APPEND_CAPS, Storage
from oqron.job import new_record


def record(job_id: str, queue: str = "q", status: str = "waiting", **extra: object) -> dict:
    base = new_record(
        job_id=job_id, queue=queue, data={"n": job_id}, status=status, options={},
        max_attempts=4, priority=0, project="p", environment="e",
    )
    base.update(extra)
    return base


def test_create_is_idempotent_per_id(storage: Storage) -> None:
    assert storage.create_jobs([record("a"), record("b")]) == [True, True]
    again = record("a", data={"changed": True})
    assert storage.create_jobs([again, record("c")]) == [False, True]
    assert storage.get_job("a")["data"] == {"n": "a"}


def test_records_round_trip_json_values(storage: Storage) -> None:
    data = {"text": "żółw ✓ \"quoted\"\nline", "n": 3, "f": 1.5, "big": 2**60, "t": True,
            "none": None, "list": [1, [2, {"x": []}]], "empty": {}}
    storage.create_jobs([record("a", data=data, correlation_id=None)])
    got = storage.get_job("a")
    assert got is not None
    assert got["data"] == data
    assert got["correlation_id"] is None
    assert got["created_at"] == pytest.approx(record("x")["created_at"], abs=60)
    assert got["timeline"][0]["to"] == "waiting"


def test_get_missing_and_many(storage: Storage) -> None:
    storage.create_jobs([record("a"), record("b")])
    assert storage.get_job("nope") is None
    got = storage.get_jobs(["b", "nope", "a"])
    assert [r["id"] if r else None for r in got] == ["b", None, "a"]


def test_update_sets_fields_and_checks_expectations(storage: Storage) -> None:
    storage.create_jobs([record("a", lease_token=None)])
    assert storage.update_job("a", {"status": "active", "lease_token": "t1", "attempts_made": 1})
    assert not storage.update_job("a", {"status": "completed"}, expect={"lease_token": "t0"})
    assert storage.get_job("a")["status"] == "active"
    assert storage.update_job("a", {"status": "completed", "return_value": {"ok": 1}},
                              expect={"lease_token": "t1", "attempts_made": 1})
    got = storage.get_job("a")
    assert got["status"] == "completed" and got["return_value"] == {"ok": 1}
    assert not storage.update_job("missing", {"status": "active"})


def test_expect_none_matches_missing_and_null(storage: Storage) -> None:
    rec = record("a")
    rec.pop("worker_id")
    storage.create_jobs([rec])
    assert storage.update_job("a", {"progress": 5}, expect={"worker_id": None, "lease_token": None})
    assert not storage.update_job("a", {"progress": 6}, expect={"lease_token": "x"})
    assert storage.get_job("a")["progress"] == 5


def test_expect_status(storage: Storage) -> None:
    storage.create_jobs([record("a")])
    assert not storage.update_job("a", {"status": "active"}, expect_status=["delayed", "failed"])
    assert storage.update_job("a", {"status": "active"}, expect_status=["waiting", "delayed"])
    assert not storage.update_job("a", {"status": "active"}, expect_status=[])


def test_append_is_capped_oldest_first(storage: Storage) -> None:
    storage.create_jobs([record("a")])
    cap = APPEND_CAPS["timeline"]
    for i in range(cap + 20):
        storage.update_job("a", {}, append={"timeline": [{"i": i}]})
    timeline = storage.get_job("a")["timeline"]
    assert len(timeline) == cap
    assert timeline[-1] == {"i": cap + 19}
    assert timeline[0] == {"i": 20}
    storage.update_job("a", {}, append={"logs": [{"msg": "a\nb"}, {"msg": "c"}]})
    assert storage.get_job("a")["logs"] == [{"msg": "a\nb"}, {"msg": "c"}]


def test_append_refused_when_expectation_fails(storage: Storage) -> None:
    storage.create_jobs([record("a", lease_token="t1")])
    assert not storage.update_job("a", {}, expect={"lease_token": "t2"}, append={"logs": [{"m": 1}]})
    assert storage.get_job("a")["logs"] == []


def test_index_follows_status(storage: Storage) -> None:
    storage.create_jobs([record(f"j{i}") for i in range(5)] + [record("other", queue="q2")])
    for job_id in ("j1", "j3"):
        storage.update_job(job_id, {"status": "completed"})
    assert storage.count_jobs("q", "waiting") == 3
    assert storage.count_jobs("q", "completed") == 2
    assert storage.count_jobs("q") == 5
    assert storage.count_jobs(None, "waiting") == 4
    assert storage.count_jobs() == 6
    assert storage.queue_names() == ["q", "q2"]
    assert {r["id"] for r in storage.list_jobs("q", "completed")} == {"j1", "j3"}


def test_list_is_newest_first_with_paging(storage: Storage) -> None:
    for i in range(6):
        storage.create_jobs([record(f"j{i}", created_at=1000.0 + i)])
        time.sleep(0.002)  # distinct creation stamps on millisecond clocks
    ids = [r["id"] for r in storage.list_jobs("q", None, limit=3)]
    assert ids == ["j5", "j4", "j3"]
    assert [r["id"] for r in storage.list_jobs("q", None, limit=3, offset=3)] == ["j2", "j1", "j0"]
    for job_id in ("j0", "j4", "j2"):
        storage.update_job(job_id, {"status": "failed"})
        time.sleep(0.002)
    assert [r["id"] for r in storage.list_jobs("q", "failed")] == ["j2", "j4", "j0"]
    assert [r["id"] for r in storage.list_jobs("q", "failed", limit=1, offset=1)] == ["j4"]
    assert storage.list_jobs("q", "failed", limit=0) == []


def test_list_across_queues(storage: Storage) -> None:
    storage.create_jobs([record("a", queue="q1")])
    time.sleep(0.002)
    storage.create_jobs([record("b", queue="q2")])
    assert [r["id"] for r in storage.list_jobs(None, "waiting")] == ["b", "a"]


def test_delete(storage: Storage) -> None:
    storage.create_jobs([record("a"), record("b")])
    assert storage.delete_jobs(["a", "zzz"]) == 1
    assert storage.get_job("a") is None
    assert storage.count_jobs("q", "waiting") == 1
    assert storage.list_jobs("q") == [storage.get_job("b")]


def test_prune_keeps_newest(storage: Storage) -> None:
    for i in range(10):
        storage.create_jobs([record(f"j{i}")])
        storage.update_job(f"j{i}", {"status": "completed"})
        time.sleep(0.002)
    storage.create_jobs([record("w")])
    assert storage.prune_jobs("q", "completed", keep=3) == 7
    assert {r["id"] for r in storage.list_jobs("q", "completed")} == {"j7", "j8", "j9"}
    assert storage.get_job("j0") is None
    assert storage.get_job("w") is not None
    assert storage.count_jobs("q") == 4


def test_prune_by_age(storage: Storage) -> None:
    storage.create_jobs([record("old")])
    storage.update_job("old", {"status": "failed"})
    time.sleep(0.3)
    storage.create_jobs([record("new")])
    storage.update_job("new", {"status": "failed"})
    assert storage.prune_jobs("q", "failed", older_than=0.2) == 1
    assert [r["id"] for r in storage.list_jobs("q", "failed")] == ["new"]
    assert storage.prune_jobs("q", "failed") == 0


def test_documents(storage: Storage) -> None:
    storage.put_doc("nodes", "n1", {"host": "a", "pid": 1})
    storage.put_doc("nodes", "n2", {"host": "b"})
    storage.put_doc("nodes", "n1", {"host": "c"})
    storage.put_doc("other", "n1", {"x": 1})
    assert storage.get_doc("nodes", "n1") == {"host": "c"}
    assert storage.list_docs("nodes") == {"n1": {"host": "c"}, "n2": {"host": "b"}}
    assert storage.delete_doc("nodes", "n1")
    assert not storage.delete_doc("nodes", "n1")
    assert storage.get_doc("nodes", "n1") is None
    assert storage.get_doc("other", "n1") == {"x": 1}


def test_prefixes_are_isolated(storage: Storage, backend: str, request: pytest.FixtureRequest,
                               prefix: str) -> None:
    from .backends import make_storage

    other = make_storage(backend, request, prefix + "other:")
    try:
        storage.create_jobs([record("a")])
        storage.put_doc("d", "k", {"v": 1})
        assert other.get_job("a") is None
        assert other.count_jobs() == 0
        assert other.queue_names() == []
        assert other.get_doc("d", "k") is None
        assert other.create_jobs([record("a")]) == [True]
    finally:
        other.close()


def test_list_oldest_first(storage: Storage) -> None:
    for i in range(4):
        storage.create_jobs([record(f"j{i}")])
        time.sleep(0.002)
    assert [r["id"] for r in storage.list_jobs("q", "waiting", oldest_first=True, limit=2)] == ["j0", "j1"]
    assert [r["id"] for r in storage.list_jobs("q", None, oldest_first=True, offset=3)] == ["j3"]
    storage.create_jobs([record("x", queue="q2")])
    waiting = storage.list_jobs(None, "waiting", oldest_first=True)
    assert [r["id"] for r in waiting] == ["j0", "j1", "j2", "j3", "x"]


def test_doc_compare_and_set(storage: Storage) -> None:
    assert not storage.put_doc("s", "k", {"v": 1}, expect={"v": 0})
    assert storage.put_doc("s", "k", {"v": 1, "t": 1.25, "name": "a"})
    assert not storage.put_doc("s", "k", {"v": 2}, expect={"v": 0})
    assert not storage.put_doc("s", "k", {"v": 2}, expect={"v": 1, "name": "b"})
    assert storage.put_doc("s", "k", {"v": 2}, expect={"v": 1, "t": 1.25, "name": "a", "missing": None})
    assert storage.get_doc("s", "k") == {"v": 2}


def test_doc_fence_refuses_older_epochs(storage: Storage) -> None:
    assert storage.put_doc("s", "k", {"tick": 1}, fence=3)
    assert storage.get_doc("s", "k") == {"tick": 1, "_fence": 3}
    assert not storage.put_doc("s", "k", {"tick": 2}, fence=2)
    assert storage.put_doc("s", "k", {"tick": 3}, fence=3)
    assert storage.put_doc("s", "k", {"tick": 4}, fence=5)
    assert not storage.put_doc("s", "k", {"tick": 5}, fence=4, expect={"tick": 4})
    assert storage.get_doc("s", "k") == {"tick": 4, "_fence": 5}


def test_undecodable_record_is_readable_and_can_be_failed(storage: Storage, backend: str) -> None:
    from tests.support.records import corrupt_record

    if backend in ("memory", "postgres"):
        pytest.skip(f"{backend} stores validated objects (Python dicts / JSONB): nothing can be damaged")
    storage.create_jobs([record("bad"), record("good")])
    corrupt_record(storage, "bad")
    damaged = storage.get_job("bad")
    assert damaged is not None and damaged["corrupt"]
    assert (damaged["id"], damaged["queue"], damaged["status"]) == ("bad", "q", "waiting")
    assert {r["id"] for r in storage.list_jobs("q")} == {"bad", "good"}
    assert storage.update_job("bad", {"status": "failed", "error": {"type": "CorruptJob"}})
    after = storage.get_job("bad")
    assert after["status"] == "failed" and after["error"] == {"type": "CorruptJob"}
    assert storage.count_jobs("q", "failed") == 1
