"""The producer API on the memory adapters."""

from __future__ import annotations

import datetime

import pytest

from oqron import Container, Runner, queue
from oqron.errors import DefinitionError


def test_add_stores_and_publishes(kit: Container) -> None:
    emails = queue("emails")
    job = emails.add({"to": "a@example.com"})
    assert job.status == "waiting" and job.data == {"to": "a@example.com"}
    assert job.queue == "emails" and job.attempts_made == 0
    assert emails.count("waiting") == 1
    assert kit.broker.counts("emails")["waiting"] == 1
    assert emails.get_job(job.id).data == job.data
    assert job.record["project"] == "oqron" and job.record["environment"] == "development"


def test_an_add_without_options_stores_what_validating_no_options_gives(kit: Container) -> None:
    # Queue.add skips validation when given no option; its stand-in must not drift from it.
    from oqron.modules.queue import DEFAULT_OPTIONS

    plain = queue("plain")
    assert plain._options(*(None,) * 9) == DEFAULT_OPTIONS
    job = plain.add({"n": 1})
    assert job.record["options"] == {} and job.record["priority"] == 0
    assert job.record["max_attempts"] == plain.retries.max + 1


def test_an_option_is_judged_by_validation_not_by_its_own_equality(kit: Container) -> None:
    class Touchy:
        def __eq__(self, other: object) -> bool:
            raise TypeError("do not compare me")

        __hash__ = object.__hash__

    with pytest.raises(ValueError, match="correlation_id: expected a string"):
        queue("touchy").add({}, correlation_id=Touchy())


def test_job_id_is_idempotent(kit: Container) -> None:
    reports = queue("reports")
    first = reports.add({"day": 1}, job_id="report-1")
    second = reports.add({"day": 2}, job_id="report-1")
    assert second.id == first.id and second.data == {"day": 1}
    assert reports.count() == 1
    assert kit.broker.counts("reports")["waiting"] == 1


def test_add_bulk(kit: Container) -> None:
    q = queue("bulk")
    jobs = q.add_bulk([{"n": i} for i in range(50)], priority=3, delay=0)
    assert len({j.id for j in jobs}) == 50
    assert q.count("waiting") == 50
    assert all(j.record["priority"] == 3 for j in jobs)
    assert q.add_bulk([]) == []


@pytest.mark.parametrize(
    ("data", "path"),
    [
        ({"user": {"created": datetime.datetime(2026, 1, 1)}},
         'data["user"]["created"]: datetime is not JSON'),
        ({"tags": {"a", "b"}}, 'data["tags"]: set is not JSON'),
        ({"obj": object()}, 'data["obj"]: object is not JSON'),
        ([1, (2, 3)], "data[1]: tuple is not JSON"),
        ({"x": float("nan")}, 'data["x"]: nan is not JSON'),
        ({1: "int key"}, "data: key 1 is int, JSON object keys must be str"),
        ({"ok": "a", "n": [None, True, 2**64]}, 'data["n"][2]: integer 18446744073709551616 is outside'),
        (["a", {"deep": [1.5, float("inf")]}], 'data[1]["deep"][1]: inf is not JSON'),
    ],
)
def test_non_json_data_is_refused_with_its_path(kit: Container, data: object, path: str) -> None:
    q = queue("strict")
    with pytest.raises(TypeError) as info:
        q.add(data)
    assert str(info.value).startswith(path)
    assert q.count() == 0
    assert kit.broker.counts("strict")["waiting"] == 0


def test_bulk_with_one_bad_item_stores_nothing(kit: Container) -> None:
    q = queue("strict")
    with pytest.raises(TypeError, match=r"items\[2\]\[\"when\"\]: date is not JSON"):
        q.add_bulk([{}, {}, {"when": datetime.date.today()}])
    assert q.count() == 0


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"delay": -1}, "delay: expected seconds >= 0"),
        ({"priority": -1}, "priority: expected an integer"),
        ({"priority": 2**21}, "priority: expected an integer"),
        ({"attempts": 0}, "attempts: expected an integer >= 1"),
        ({"backoff": {"type": "linear", "delay": 1}}, "backoff: expected seconds"),
        ({"job_id": ""}, "job_id: expected a string"),
        ({"job_id": "a\nb"}, "job_id: expected a string"),
        ({"on_parent_failure": "explode"}, "on_parent_failure: expected one of"),
        ({"remove_on_complete": -3}, "remove_on_complete: expected"),
    ],
)
def test_bad_options_are_refused(kit: Container, options: dict, message: str) -> None:
    q = queue("opts")
    with pytest.raises(ValueError, match=message):
        q.add({}, **options)
    assert q.count() == 0


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("bad name", {}, "queue name: expected"),
        ("", {}, "queue name: expected"),
        ("a:b", {}, "queue name: expected"),
        ("ok", {"strategy": "random"}, "strategy: expected one of fifo, lifo, priority"),
        ("ok", {"timeout": 0}, "timeout: expected seconds > 0"),
        ("ok", {"retries": 3}, "retries: expected oqron.Retries"),
    ],
)
def test_bad_definitions_are_refused(name: str, options: dict, message: str) -> None:
    with pytest.raises(DefinitionError, match=message):
        queue(name, **options)


def test_conflicting_redefinition_is_refused() -> None:
    queue("reports", timeout=10)
    assert queue("reports", timeout=10).timeout == 10
    with pytest.raises(DefinitionError, match="already defined with other options"):
        queue("reports", timeout=20)


def test_unknown_status_is_refused(kit: Container) -> None:
    with pytest.raises(ValueError, match="status: expected one of"):
        queue("q").count("done")


def test_get_jobs_newest_first_and_counts(kit: Container) -> None:
    q = queue("q")
    ids = [q.add({"n": i}).id for i in range(5)]
    assert [j.id for j in q.get_jobs("waiting", limit=2)] == ids[::-1][:2]
    assert q.counts()["waiting"] == 5
    assert q.get_job("nope") is None


def test_pause_resume_drain_obliterate(kit: Container) -> None:
    q = queue("q")

    @q.handler
    def run(ctx):  # type: ignore[no-untyped-def]
        return ctx.data

    q.add({"n": 1})
    q.pause()
    assert q.is_paused()
    assert Runner(["q"]).run_until_empty() == {}
    q.add({"n": 2})
    assert q.count("waiting") == 2
    q.resume()
    assert Runner(["q"]).run_until_empty()["completed"] == 2
    q.add({"n": 3})
    q.add({"n": 4}, delay=60)
    assert q.drain() == 2
    assert q.count("waiting") == 0 and q.count("delayed") == 0
    assert q.count("completed") == 2
    assert q.obliterate() == 2
    assert q.count() == 0


def test_worker_decorator_attaches_a_handler(kit: Container) -> None:
    reports = queue("reports")
    assert reports.function is None

    from oqron import worker

    @worker("reports")
    def build(ctx):  # type: ignore[no-untyped-def]
        return {"built": ctx.data["day"]}

    job = reports.add({"day": 3})
    Runner().run_until_empty(raise_errors=True)
    assert job.refresh().return_value == {"built": 3}
