"""job_add's packed records (``RecordPacker``): the fields of every record are those the
generic encoding gives, though the shared ones are packed once and reused across adds."""

from __future__ import annotations

import sys
import threading
import time
from typing import Any

from oqron.adapters.redis.jobpath import RecordPacker
from oqron.adapters.redis.packed import pack, pack_fields
from oqron.adapters.redis.records import encode_fields, encode_new
from oqron.job import new_record


def record(job_id: str, **fields: Any) -> dict[str, Any]:
    options = {"job_id": job_id, "queue": "q", "data": {"n": job_id}, "status": "waiting", "options": {},
               "max_attempts": 3, "priority": 0, "project": "p", "environment": "e", "now": time.time()}
    options.update(fields)
    return new_record(**options)


def unpacked(count: int, body: bytes) -> list[dict[str, bytes]]:
    """The records in job_add's arguments: id, status, field count, then field/value pairs."""
    values, at = [], 0
    while at < len(body):
        assert body[at:at + 1] == b"$"
        end = body.index(b"\r\n", at)
        size = int(body[at + 1:end])
        values.append(body[end + 2:end + 2 + size])
        at = end + 4 + size
    assert len(values) == count
    records = []
    while values:
        job_id, status, width = values[0], values[1], int(values[2])
        pairs = values[3:3 + 2 * width]
        records.append({"id": job_id, "status": status, **dict(zip(
            [name.decode() for name in pairs[::2]], pairs[1::2], strict=True))})
        values = values[3 + 2 * width:]
    return records


def expected(rec: dict[str, Any]) -> dict[str, bytes]:
    flat = encode_new(rec)
    fields = {str(name): value if isinstance(value, bytes) else str(value).encode()
              for name, value in zip(flat[::2], flat[1::2], strict=True)}
    return {"id": rec["id"].encode(), "status": rec["status"].encode(), **fields}


def test_each_record_holds_what_the_generic_encoding_gives() -> None:
    packer = RecordPacker()
    batch = [record("a"), record("b", now=time.time() + 5)]
    assert unpacked(*packer.pack(batch, uniform=True)) == [expected(r) for r in batch]


def test_a_later_add_with_other_shared_values_is_packed_afresh() -> None:
    packer = RecordPacker()
    first = record("a")
    packer.pack([first], uniform=True)
    for later in (record("b", max_attempts=7), record("c", priority=4, correlation_id="x"),
                  record("d", options={"attempts": 2}), record("e", status="delayed", run_at=9.5),
                  record("f")):
        assert unpacked(*packer.pack([later], uniform=True)) == [expected(later)]


def test_records_that_differ_within_an_add_are_each_packed_with_their_own_values() -> None:
    packer = RecordPacker()
    batch = [record("a"), record("b", priority=3), record("c")]
    assert unpacked(*packer.pack(batch, uniform=False)) == [expected(r) for r in batch]


def test_a_packed_record_changed_afterwards_does_not_pass_for_what_was_packed() -> None:
    packer = RecordPacker()
    first = record("a", options={"attempts": 2})
    packer.pack([first], uniform=True)
    first["options"]["attempts"] = 5  # the caller's dict, changed in place
    later = record("b", options={"attempts": 5})
    assert unpacked(*packer.pack([later], uniform=True)) == [expected(later)]


def test_threads_adding_with_other_shared_values_each_get_their_own() -> None:
    """One packer serves every producer thread of a process: one thread's new shared fields
    never go out with another thread's record."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as the interpreter can
    packer = RecordPacker()
    wrong: list[str] = []

    def produce(attempts: int) -> None:
        for n in range(1500):
            rec = record(f"{attempts}-{n}", max_attempts=attempts, options={"attempts": attempts})
            if unpacked(*packer.pack([rec], uniform=True)) != [expected(rec)]:
                wrong.append(rec["id"])

    try:
        threads = [threading.Thread(target=produce, args=(attempts,)) for attempts in (2, 5, 9)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert wrong == []


def test_packed_fields_are_the_generic_packing() -> None:
    """A finish packs its changes with field names from a cache: the bytes are pack()'s."""
    changes = {"status": "completed", "return_value": {"ok": [1, "é"]}, "finished_at": 1.5,
               "progress": 100, "error": None, "logs": [{"m": "a"}, {"m": "b"}]}
    for _ in range(2):  # names packed afresh, then from the cache
        flat = encode_fields(changes)
        assert pack_fields(flat) == pack(flat)
    assert pack_fields(["plain", "text", "raw", b"\x00bytes"]) == pack(["plain", "text", "raw", b"\x00bytes"])
