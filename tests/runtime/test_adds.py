"""Adds on every runtime backend: an id the caller chose is stored once (the Redis path skips
its duplicate checks only for ids it generated), and an add of an existing id changes nothing."""

from __future__ import annotations

from oqron import Container, queue


def test_a_chosen_job_id_is_stored_and_queued_once(kit: Container) -> None:
    jobs = queue("chosen-ids")
    first = jobs.add({"n": 1}, job_id="chosen-1")
    again = jobs.add({"n": 2}, job_id="chosen-1", priority=3)
    assert again.id == first.id and again.data == {"n": 1} and again.record["priority"] == 0
    assert jobs.get_job("chosen-1").data == {"n": 1}  # type: ignore[union-attr]
    assert jobs.count() == 1 and kit.broker.counts("chosen-ids")["waiting"] == 1
    bulk = jobs.add_bulk([{"n": n} for n in range(3)])
    single = jobs.add({"n": 9})
    ids = {job.id for job in [*bulk, single]}
    assert len(ids) == 4 and "chosen-1" not in ids
    assert jobs.count() == 5 and kit.broker.counts("chosen-ids")["waiting"] == 5
