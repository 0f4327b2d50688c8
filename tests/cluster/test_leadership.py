"""Leader election across real masters: one leader at a time, fast failover, sharding, fencing."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable

import pytest

from oqron import Container
from tests.support.master import MasterProcess
from tests.support.wait import wait_for

from .conftest import leader_shards

IDLE_APP = 'queue("q").handler(lambda ctx: None)\n'


def leaders(masters: list[MasterProcess], shard: int = 0) -> list[MasterProcess]:
    return [m for m in masters if shard in leader_shards(m.pid)]


def sample(masters: list[MasterProcess], seconds: float, shards: int = 1) -> None:
    """Every 100 ms, every shard has exactly one leader."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for shard in range(shards):
            found = leaders(masters, shard)
            assert len(found) == 1, f"shard {shard}: {len(found)} leaders at {time.monotonic():.2f}"
        time.sleep(0.1)


def wait_single_leader(masters: list[MasterProcess], timeout: float) -> MasterProcess:
    found = wait_for(lambda: len(leaders(masters)) == 1 and leaders(masters), timeout,
                     interval=0.01, message="exactly one leader")
    return found[0]


@pytest.mark.timeout(120)
def test_one_leader_at_a_time_and_fast_failover(
    kit: Container, spawn_master: Callable[..., MasterProcess]
) -> None:
    masters = [spawn_master(IDLE_APP, "--workers", "1") for _ in range(3)]
    for master in masters:
        master.wait_workers(1)
    first = wait_single_leader(masters, 10)
    sample(masters, 20)

    os.kill(first.pid, signal.SIGKILL)
    killed = time.monotonic()
    survivors = [m for m in masters if m is not first]
    second = wait_single_leader(survivors, 6)
    assert time.monotonic() - killed < 3.5, f"failover after kill -9 took {time.monotonic() - killed:.2f} s"

    second.send(signal.SIGTERM)
    stopped = time.monotonic()
    remaining = [m for m in survivors if m is not second]
    wait_single_leader(remaining, 3)
    assert time.monotonic() - stopped < 1.0, f"failover after TERM took {time.monotonic() - stopped:.2f} s"
    assert second.wait_exit(10) == 0
    sample(remaining, 2)


@pytest.mark.timeout(120)
def test_sharded_leadership_moves_to_standbys(
    kit: Container, spawn_master: Callable[..., MasterProcess]
) -> None:
    owned = [[0, 1, 2], [1, 2, 3], [0, 3]]
    masters = [
        spawn_master(IDLE_APP, "--workers", "1",
                     env={"OQRON_CLUSTERING":
                          f'{{"total_shards": 4, "owned_shards": {shards}, "region": "r{i}"}}'})
        for i, shards in enumerate(owned)
    ]
    wait_for(lambda: all(len(leaders(masters, s)) == 1 for s in range(4)), 10, message="4 shard leaders")
    sample(masters, 5, shards=4)
    victim = max(masters, key=lambda m: len(leader_shards(m.pid)))
    moved = leader_shards(victim.pid)
    os.kill(victim.pid, signal.SIGKILL)
    killed = time.monotonic()
    rest = [m for m in masters if m is not victim]
    wait_for(lambda: all(len(leaders(rest, s)) == 1 for s in moved), 6, interval=0.01,
             message=f"shards {sorted(moved)} taken over")
    assert time.monotonic() - killed < 3.5
    sample(rest, 3, shards=4)


CRON_APP = """
from oqron import cron

@cron("tick", every=1)
def tick(ctx):
    return ran(ctx)
"""


@pytest.mark.timeout(120)
def test_deposed_leader_stops_acting_and_ticks_stay_exactly_once(
    kit: Container, spawn_master: Callable[..., MasterProcess], counter: Callable[[], dict[str, int]]
) -> None:
    masters = [spawn_master(CRON_APP, "--workers", "1") for _ in range(2)]
    first = wait_single_leader(masters, 10)
    other = next(m for m in masters if m is not first)
    wait_for(lambda: len(counter()) >= 2, 10, message="cron ticks running")
    os.kill(first.pid, signal.SIGSTOP)
    try:
        wait_single_leader([other], 6)
        time.sleep(5)  # hold the old leader frozen well past its 2.5 s lease
    finally:
        os.kill(first.pid, signal.SIGCONT)
    wait_for(lambda: not leader_shards(first.pid), 2, interval=0.01, message="deposed leader steps down")
    assert "no longer leader of scheduler:leader: lease not renewed in time" in first.log()
    time.sleep(3)
    runs = counter()
    ticks = sorted(int(job_id.rsplit(":", 1)[1]) for job_id in runs)
    assert set(runs.values()) == {1}, "a tick ran twice"
    assert ticks == list(range(ticks[0], ticks[-1] + 1)), f"missing ticks in {ticks}"
    assert len(ticks) >= 8
    state = kit.storage.get_doc("cron", "tick")
    assert state is not None and state["_fence"] == kit.lock.epoch("scheduler:leader")
