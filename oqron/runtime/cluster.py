"""A master's share of cluster work: campaign for its shards, and while it leads them tick the
scheduler, recover stalled jobs and reconcile; always publish its node heartbeat.

Each duty has its own cadence; ``tick`` is cheap to call on every turn of the master loop and
``next_deadline`` tells the loop how long it may sleep.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from ..config import Config
from ..container import Container
from ..errors import AdapterError
from ..registry import Registry
from .leader import Leadership, shard_of
from .nodes import NodeRegistry, forget_dead
from .recovery import Recovery
from .scheduler import Scheduler

log = logging.getLogger("oqron.cluster")

SCHEDULER_EVERY = 0.5
STALL_SCAN_EVERY = 1.0
RECONCILE_EVERY = 30.0
HEARTBEAT_EVERY = 2.0


class Cluster:
    def __init__(self, node_id: str, config: Config, registry: Registry) -> None:
        container = Container.get()
        self.config = config
        self.registry = registry
        self.leadership = Leadership(container.lock, node_id, config.clustering)
        self.scheduler = Scheduler(container.lifecycle, registry)
        self.recovery = Recovery(container.lifecycle, registry, config)
        self.nodes = NodeRegistry(container.storage, node_id, config.clustering.region)
        self.campaigning = True
        self._due = {"scheduler": 0.0, "stalls": 0.0, "reconcile": time.monotonic() + 5.0, "heartbeat": 0.0}

    def tick(self, workers: int, busy: int) -> None:
        if self.campaigning:
            self.leadership.tick()
        leading = self.leadership.leading()
        if leading:
            self._leader_duties(leading)
        if self._is_due("heartbeat", HEARTBEAT_EVERY):
            self._guard("heartbeat", lambda: self.nodes.heartbeat(workers, busy, leading))

    def _leader_duties(self, leading: list[int]) -> None:
        if "cron" in self.config.modules and self._is_due("scheduler", SCHEDULER_EVERY):
            self._guard("scheduler", lambda: self.scheduler.tick(self.leadership))
        if self._is_due("stalls", STALL_SCAN_EVERY):
            self._guard("stall recovery", lambda: self.recovery.recover_stalled(self._my_queues(leading)))
        if self._is_due("reconcile", RECONCILE_EVERY):
            self._guard("reconciliation", lambda: self.recovery.reconcile(self._my_queues(leading)))
            if 0 in leading:
                self._guard("node registry", lambda: forget_dead(Container.get().storage))

    def _my_queues(self, leading: list[int]) -> list[str]:
        total = self.leadership.total
        names = Container.get().storage.queue_names()
        return [n for n in names if total == 1 or shard_of(n, total) in leading]

    def _is_due(self, duty: str, every: float) -> bool:
        now = time.monotonic()
        if now < self._due[duty]:
            return False
        self._due[duty] = now + every
        return True

    def _guard(self, duty: str, action: Callable[[], object]) -> None:
        try:
            action()
        except AdapterError as exc:
            log.warning("%s: backend unavailable: %s", duty, exc)
        except Exception:
            log.exception("%s failed; retrying on its next turn", duty)

    def next_deadline(self) -> float:
        deadlines = [self._due["heartbeat"]]
        if self.campaigning:
            deadlines.append(self.leadership.next_action())
        if self.leadership.leading():
            deadlines += [self._due["scheduler"], self._due["stalls"], self._due["reconcile"]]
        return min(deadlines)

    def resign(self) -> None:
        """Stop campaigning and give up every shard at once (shutdown)."""
        self.campaigning = False
        self.leadership.release()

    def leave(self) -> None:
        self.resign()
        try:
            self.nodes.remove()
        except AdapterError:
            pass
