"""The leader's cron tick: add one job per due tick and move the schedule's pointer, fenced.

State per definition is a document in storage namespace ``cron`` (``next_at``, ``last_tick``,
``paused``). The job for a tick is added first (its id is deterministic, so adding it twice is
harmless), then the pointer moves with a write that is both a compare-and-set on ``next_at``
and fenced by the leadership epoch: a deposed leader cannot move it back or forth.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from ..errors import AdapterError
from ..job import ACTIVE, DELAYED, WAITING
from ..lifecycle import AddOptions, Lifecycle
from ..modules.cron import Cron
from ..registry import Registry
from .leader import Leadership

log = logging.getLogger("oqron.scheduler")
NAMESPACE = "cron"


class Scheduler:
    def __init__(self, lifecycle: Lifecycle, registry: Registry) -> None:
        self.lifecycle = lifecycle
        self.registry = registry
        self.refused = 0  # fenced writes refused (a newer leader exists)
        self._next_at: dict[str, float] = {}  # cache: no storage read before a tick is due

    def tick(self, leadership: Leadership, now: float | None = None) -> None:
        now = time.time() if now is None else now
        for cron in list(self.registry.crons.values()):
            epoch = leadership.epoch_for(cron.name)
            if epoch is None or self._next_at.get(cron.name, 0.0) > now:
                continue
            try:
                self.tick_one(cron, epoch, now)
            except AdapterError as exc:
                log.warning("cron %s: backend unavailable: %s", cron.name, exc)

    def tick_one(self, cron: Cron, epoch: int, now: float) -> None:
        storage = self.lifecycle.storage
        state = storage.get_doc(NAMESPACE, cron.name)
        signature = cron.expression or f"every {cron.interval}"
        if state is None or state.get("schedule") != signature:
            fresh = {"next_at": cron.next_after(now), "last_tick": None, "paused": False,
                     "schedule": signature}
            if state is not None:
                fresh["paused"] = bool(state.get("paused"))
            self._write(cron, fresh, epoch, None if state is None else state)
            return
        if state.get("paused") or state["next_at"] > now:
            self._next_at[cron.name] = state["next_at"]
            return
        fire, next_at = cron.due_ticks(state["next_at"], now)
        if fire and not cron.overlap and self._still_running(cron, state.get("last_tick")):
            log.info("cron %s: previous run still going, skipping %d tick(s)", cron.name, len(fire))
            fire = []
        for tick in fire:
            self._enqueue(cron, tick)
        last_tick = fire[-1] if fire else state.get("last_tick")
        self._write(cron, {**state, "next_at": next_at, "last_tick": last_tick}, epoch, state)

    def _write(self, cron: Cron, new: dict[str, Any], epoch: int, old: dict[str, Any] | None) -> None:
        storage = self.lifecycle.storage
        new.pop("_fence", None)
        if old is None:
            written = storage.put_doc(NAMESPACE, cron.name, new, fence=epoch)
        else:
            written = storage.put_doc(NAMESPACE, cron.name, new, fence=epoch,
                                      expect={"next_at": old["next_at"]})
        if written:
            self._next_at[cron.name] = new["next_at"]
        else:
            self.refused += 1
            self._next_at.pop(cron.name, None)
            log.warning("cron %s: scheduler write refused by the epoch check (epoch %d is stale or "
                        "another leader moved on)", cron.name, epoch)

    def _still_running(self, cron: Cron, last_tick: float | None) -> bool:
        if last_tick is None:
            return False
        record = self.lifecycle.storage.get_job(cron.job_id(last_tick))
        return record is not None and record["status"] in (WAITING, DELAYED, ACTIVE)

    def _enqueue(self, cron: Cron, tick: float) -> None:
        assert cron.queue is not None
        options = AddOptions(delay=cron.jitter_delay(), triggered_by="cron")
        self.lifecycle.add(cron.queue, [(cron.payload, cron.job_id(tick))], options)


def set_paused(lifecycle: Lifecycle, name: str, paused: bool) -> bool:
    """Pause or resume a cron definition cluster-wide (False if it never ran yet)."""
    storage = lifecycle.storage
    for _ in range(5):
        state = storage.get_doc(NAMESPACE, name)
        if state is None:
            return False
        fence = state.get("_fence")
        new = {k: v for k, v in state.items() if k != "_fence"}
        new["paused"] = paused
        if storage.put_doc(NAMESPACE, name, new, fence=fence, expect={"next_at": state["next_at"]}):
            return True
    return False
