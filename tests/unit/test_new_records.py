"""An add builds its records from one template (``new_records``): each is what ``new_record``
gives for its job, and none shares a list with another."""

from __future__ import annotations

from typing import Any

from oqron.job import new_record, new_records

SHARED: dict[str, Any] = dict(queue="q", status="waiting", options={"attempts": 2}, max_attempts=2,
                              priority=3, project="p", environment="e", triggered_by="api",
                              correlation_id="c", parent_ids=["p1", "p2"], run_at=None, now=1234.5)


def test_each_record_is_what_new_record_gives() -> None:
    items = [({"n": 1}, "a"), (None, "b"), ([1, "x"], "c")]
    made = new_records(items, **SHARED)
    assert made == [new_record(job_id=job_id, data=data, **SHARED) for data, job_id in items]
    assert [list(record) for record in made] == [list(new_record(job_id="a", data=1, **SHARED))] * 3


def test_records_share_no_list() -> None:
    first, second = new_records([(1, "a"), (2, "b")], **SHARED)
    for field, value in first.items():  # every list, and every dict inside one, is the record's own
        if isinstance(value, list):
            assert value is not second[field], field
            pairs = zip(value, second[field], strict=True)
            assert all(a is not b for a, b in pairs if isinstance(a, dict)), field
    first["timeline"].append({"ts": 1})
    first["timeline"][0]["reason"] = "changed"
    first["logs"].append("line")
    first["children_ids"].append("kid")
    first["parent_ids"].append("p3")
    assert second == new_record(job_id="b", data=2, **SHARED)
