"""Backend trouble as the runtime sees it: one warning per outage, capped backoff, and a job that
was claimed but never started is not charged a stall."""

from __future__ import annotations

import logging

import pytest

from oqron import Container, queue
from oqron.errors import AdapterUnavailable
from oqron.runtime.outage import BACKOFF_CAP, Outage
from tests.support.wait import wait_for


def test_an_outage_logs_once_when_it_starts_and_once_when_it_ends(caplog: pytest.LogCaptureFixture) -> None:
    outage = Outage("heartbeat", logging.getLogger("test.outage"))
    caplog.set_level(logging.DEBUG, "test.outage")
    delays = [outage.failed(AdapterUnavailable("redis: connection refused")) for _ in range(20)]
    assert outage.down
    outage.recovered()
    assert not outage.down and outage.delay() == 0.0
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "heartbeat: backend unavailable" in warnings[0].getMessage()
    assert "connection refused" in warnings[0].getMessage()
    infos = [r for r in caplog.records if r.levelno == logging.INFO]
    assert len(infos) == 1 and "heartbeat: backend reachable again after" in infos[0].getMessage()
    assert 0.05 <= delays[0] <= 0.1
    assert delays[1] <= 0.2 and delays[2] <= 0.4
    assert all(d <= BACKOFF_CAP for d in delays) and max(delays) >= BACKOFF_CAP / 2


def test_recovery_quiet_without_an_outage(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, "test.outage")
    Outage("claims", logging.getLogger("test.outage")).recovered()
    assert not caplog.records


def test_a_lease_that_never_started_its_job_expires_without_a_stall(kit: Container) -> None:
    q = queue("q")
    job = q.add({})
    lease = kit.broker.claim(["q"], "c", lease_ttl=0.01)  # claimed, then the start never happened
    assert lease is not None and job.refresh().status == "waiting"
    wait_for(lambda: kit.broker.expired_leases("q"), 5, message="lease expiry")
    assert kit.lifecycle.recover_expired("q", q, max_stalled=0) == [job.id]
    job.refresh()
    assert job.status == "waiting" and job.record.get("stalled_count", 0) == 0
    claimed = kit.lifecycle.claim(["q"], "c2", lease_ttl=30)
    assert claimed is not None and claimed.job_id == job.id and claimed.record["attempts_made"] == 1
