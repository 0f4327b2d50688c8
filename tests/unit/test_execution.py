"""Running jobs: outcomes, retries, timeouts, context, waiting, cancelling (memory adapters)."""

from __future__ import annotations

import threading
import time

import pytest

from oqron import Container, JobFailed, JobTimeout, Retries, Runner, queue


def test_success_records_return_value_and_timeline(kit: Container) -> None:
    q = queue("q")

    @q.handler
    def run(ctx):  # type: ignore[no-untyped-def]
        ctx.progress(40, "halfway")
        ctx.log.info("working on %s", ctx.data["n"])
        assert ctx.attempt == 1 and ctx.max_attempts == 4 and ctx.queue == "q"
        return {"double": ctx.data["n"] * 2}

    job = q.add({"n": 21})
    assert Runner().run_until_empty(raise_errors=True) == {"completed": 1}
    job.refresh()
    assert job.status == "completed" and job.return_value == {"double": 42}
    assert job.progress == 100 and job.attempts_made == 1
    assert [e["to"] for e in job.timeline] == ["waiting", "active", "completed"]
    assert job.logs[0]["msg"] == "working on 21" and job.logs[0]["level"] == "info"
    assert job.started_at <= job.finished_at
    assert kit.broker.counts("q") == {"waiting": 0, "delayed": 0, "active": 0}


def test_retries_then_failure(kit: Container) -> None:
    q = queue("flaky", retries=Retries(max=2, strategy="fixed", base_delay=0.0))
    calls = []

    @q.handler
    def run(ctx):  # type: ignore[no-untyped-def]
        calls.append(ctx.attempt)
        raise ValueError(f"attempt {ctx.attempt} broke")

    job = q.add({})
    Runner().run_until_empty()
    job.refresh()
    assert calls == [1, 2, 3]
    assert job.status == "failed" and job.attempts_made == 3
    assert job.error == {"type": "ValueError", "message": "attempt 3 broke"}
    assert "ValueError: attempt 3 broke" in job.record["stacktrace"]
    with pytest.raises(JobFailed, match="ValueError: attempt 3 broke"):
        job.wait(timeout=1)


def test_retry_waits_for_backoff(kit: Container) -> None:
    q = queue("backoff", retries=Retries(max=1, strategy="fixed", base_delay=0.2))

    @q.handler
    def run(ctx):  # type: ignore[no-untyped-def]
        if ctx.attempt == 1:
            raise RuntimeError("first")
        return "second"

    job = q.add({})
    started = time.monotonic()
    outcome = Runner().run_until_empty(wait_delayed=True, timeout=5)
    assert outcome == {"delayed": 1, "completed": 1}
    assert time.monotonic() - started >= 0.19
    assert job.refresh().return_value == "second"


def test_job_attempts_override_queue_retries(kit: Container) -> None:
    q = queue("q", retries=Retries(max=5, strategy="fixed", base_delay=0))

    @q.handler
    def run(ctx):  # type: ignore[no-untyped-def]
        raise ValueError("no")

    job = q.add({}, attempts=2)
    Runner().run_until_empty()
    assert job.refresh().attempts_made == 2 and job.status == "failed"


def test_discard_fails_without_retry(kit: Container) -> None:
    q = queue("q")

    @q.handler
    def run(ctx):  # type: ignore[no-untyped-def]
        try:
            ctx.discard("bad input")
        except Exception:  # noqa: BLE001 - a handler that swallows everything
            pass  # even swallowed, a discard sticks
        return "ignored"

    job = q.add({})
    Runner().run_until_empty()
    assert job.refresh().status == "failed" and job.attempts_made == 1
    assert job.error["type"] == "JobDiscarded"


def test_base_exceptions_fail_the_job_and_the_runner_goes_on(kit: Container) -> None:
    q = queue("q", retries=Retries(max=0))

    @q.handler
    def run(ctx):  # type: ignore[no-untyped-def]
        if ctx.data["exit"]:
            raise SystemExit(3)
        return "ok"

    bad = q.add({"exit": True})
    good = q.add({"exit": False})
    Runner().run_until_empty()
    assert bad.refresh().status == "failed" and bad.error["type"] == "SystemExit"
    assert good.refresh().status == "completed"


def test_return_value_must_be_json(kit: Container) -> None:
    q = queue("q")

    @q.handler
    def run(ctx):  # type: ignore[no-untyped-def]
        return {"when": time}

    job = q.add({})
    Runner().run_until_empty()
    job.refresh()
    assert job.status == "failed" and job.attempts_made == 1
    assert job.error["message"] == 'return value["when"]: module is not JSON'


def test_unknown_handler_fails_without_retry(kit: Container) -> None:
    q = queue("nobody-home")
    job = q.add({})
    Runner(["nobody-home"]).run_until_empty()
    job.refresh()
    assert job.status == "failed" and job.error["type"] == "UnknownHandler"


def test_soft_timeout_can_be_caught(kit: Container) -> None:
    q = queue("slow", soft_timeout=0.1)

    @q.handler
    def run(ctx):  # type: ignore[no-untyped-def]
        try:
            time.sleep(5)
        except JobTimeout:
            return "cleaned up"
        return "slept"

    job = q.add({})
    started = time.monotonic()
    Runner().run_until_empty(raise_errors=True)
    assert time.monotonic() - started < 2
    assert job.refresh().return_value == "cleaned up"


def test_soft_timeout_uncaught_is_a_retryable_failure(kit: Container) -> None:
    q = queue("slow", soft_timeout=0.05, retries=Retries(max=0))

    @q.handler
    def run(ctx):  # type: ignore[no-untyped-def]
        time.sleep(5)

    job = q.add({})
    Runner().run_until_empty()
    assert job.refresh().error["type"] == "JobTimeout"


def test_raise_errors_reraises_the_handler_exception(kit: Container) -> None:
    q = queue("q")

    @q.handler
    def run(ctx):  # type: ignore[no-untyped-def]
        raise KeyError("missing")

    q.add({})
    with pytest.raises(KeyError, match="missing"):
        Runner().run_until_empty(raise_errors=True)


def test_wait_returns_when_another_thread_finishes_it(kit: Container) -> None:
    q = queue("q")

    @q.handler
    def run(ctx):  # type: ignore[no-untyped-def]
        return ctx.data["n"] + 1

    job = q.add({"n": 1})
    worker = threading.Thread(target=lambda: Runner().run_one(timeout=5))
    worker.start()
    assert job.wait(timeout=5) == 2
    worker.join()
    with pytest.raises(TimeoutError):
        q.add({"n": 2}).wait(timeout=0.05)


def test_cancel_and_retry(kit: Container) -> None:
    q = queue("q")

    @q.handler
    def run(ctx):  # type: ignore[no-untyped-def]
        return "ran"

    job = q.add({})
    assert job.cancel()
    assert job.status == "cancelled"
    assert not job.cancel()
    assert Runner().run_until_empty() == {}
    with pytest.raises(JobFailed, match="cancelled"):
        job.wait(timeout=1)
    assert job.retry()
    assert job.status == "waiting"
    Runner().run_until_empty()
    assert job.refresh().return_value == "ran"
    assert not job.retry()


def test_cancel_while_running_refuses_the_result(kit: Container) -> None:
    q = queue("q")
    holder = {}

    @q.handler
    def run(ctx):  # type: ignore[no-untyped-def]
        holder["job"].cancel()
        return "too late"

    holder["job"] = q.add({})
    Runner().run_until_empty()
    job = holder["job"].refresh()
    assert job.status == "cancelled" and job.return_value is None
    assert kit.broker.counts("q") == {"waiting": 0, "delayed": 0, "active": 0}


def test_retention(kit: Container) -> None:
    q = queue("q", remove_on_complete=2, remove_on_fail=True, retries=Retries(max=0))

    @q.handler
    def run(ctx):  # type: ignore[no-untyped-def]
        if ctx.data["fail"]:
            raise ValueError("x")
        return ctx.data["n"]

    kept = [q.add({"n": i, "fail": False}) for i in range(5)]
    gone = q.add({"n": 9, "fail": True})
    keep_me = q.add({"n": 10, "fail": True}, remove_on_fail=False)
    Runner().run_until_empty()
    assert q.count("completed") == 2
    assert {j.id for j in q.get_jobs("completed")} == {kept[3].id, kept[4].id}
    assert q.get_job(gone.id) is None
    assert q.get_job(keep_me.id).status == "failed"


def test_spawn_adds_a_correlated_job(kit: Container) -> None:
    first = queue("first")
    second = queue("second")

    @first.handler
    def one(ctx):  # type: ignore[no-untyped-def]
        return ctx.spawn("second", {"from": ctx.id}).id

    @second.handler
    def two(ctx):  # type: ignore[no-untyped-def]
        return ctx.correlation_id

    job = first.add({})
    Runner().run_until_empty(raise_errors=True)
    spawned = second.get_job(job.refresh().return_value)
    assert spawned.refresh().return_value == job.id
