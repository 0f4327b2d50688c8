"""The fence itself: a leader frozen past its lease, that still believes it leads, has its
scheduler write refused once a newer leader has written."""

from __future__ import annotations

from pathlib import Path

import pytest

from oqron import OqronKit, cron, define_config
from oqron.registry import registry
from oqron.runtime.leader import LeaderElection
from oqron.runtime.scheduler import NAMESPACE, Scheduler
from tests.support.clock import FakeClock
from tests.support.wait import wait_for


@pytest.mark.parametrize("store", ["redis", "postgres", "sqlite"])
def test_stale_epoch_write_is_refused(store: str, request: pytest.FixtureRequest, project: str,
                                      tmp_path: Path) -> None:
    if store == "sqlite":
        url = f"sqlite:///{tmp_path}/fence.db"
    else:
        url = request.getfixturevalue("redis_url" if store == "redis" else "pg_url")
    kit = OqronKit.init(define_config(storage=url, broker=url, lock=url, project=project))
    try:
        cron("tick", every=1)(lambda ctx: None)
        definition = registry.crons["tick"]
        scheduler = Scheduler(kit.lifecycle, registry)

        frozen = FakeClock(0.0)  # the old leader's clock does not move: it thinks it still leads
        old = LeaderElection(kit.lock, "scheduler:leader", "old", ttl=0.3, clock=frozen)
        old.tick()
        assert old.epoch is not None and old.is_leader()
        scheduler.tick_one(definition, old.epoch, 1000.0)
        assert kit.storage.get_doc(NAMESPACE, "tick")["_fence"] == old.epoch

        new = LeaderElection(kit.lock, "scheduler:leader", "new", ttl=5)

        def campaign() -> bool:
            new.next_action = 0.0
            new.tick()
            return new.epoch is not None

        wait_for(campaign, 5, interval=0.05, message="the lock expiring and a new leader")
        assert new.epoch is not None and new.epoch > old.epoch
        scheduler.tick_one(definition, new.epoch, 1001.5)
        written = kit.storage.get_doc(NAMESPACE, "tick")
        assert written["_fence"] == new.epoch and written["next_at"] == 1002.0

        assert old.is_leader()  # frozen clock: the deposed leader has not noticed
        scheduler.tick_one(definition, old.epoch, 1003.0)
        assert scheduler.refused == 1
        assert kit.storage.get_doc(NAMESPACE, "tick") == written
    finally:
        OqronKit.stop()
