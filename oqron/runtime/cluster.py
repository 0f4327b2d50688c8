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
from .outage import Outage
from .recovery import Recovery
from .scheduler import Scheduler

log = logging.getLogger("oqron.cluster")

SCHEDULER_EVERY = 0.5
STALL_SCAN_EVERY = 1.0
RECONCILE_EVERY = 30.0
HEARTBEAT_EVERY = 2.0
STALL_DUTY = "stall recovery"


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
        self._outages: dict[str, Outage] = {}
        #: Leases may have expired only because the backend was away: see ``_recover_stalled``.
        self.stall_grace_pending = False

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
            self._guard(STALL_DUTY, lambda: self._recover_stalled(leading))
        if self._is_due("reconcile", RECONCILE_EVERY):
            self._guard("reconciliation", lambda: self.recovery.reconcile(self._my_queues(leading)))
            if 0 in leading:
                self._guard("node registry", lambda: forget_dead(Container.get().storage))

    def _recover_stalled(self, leading: list[int]) -> None:
        """Requeue jobs whose lease expired, except right after the backend was away: then every
        master's lease renewal failed too, and the leases of jobs still running elsewhere have
        expired as well. Their masters renew them within one renewal period of the backend's
        return, so the first scan waits that long rather than send live jobs to run twice."""
        queues = self._my_queues(leading)
        if self.stall_grace_pending:
            for name in queues:
                Container.get().broker.expired_leases(name, limit=1)  # is the broker back?
            self.stall_grace_pending = False
            grace = self.config.lease_ttl / 5 + STALL_SCAN_EVERY
            self._due["stalls"] = time.monotonic() + grace
            log.info("backend back: first stall scan in %.1f s, once live leases are renewed", grace)
            return
        self.recovery.recover_stalled(queues)

    def backend_trouble(self) -> None:
        """The master could not reach a backend (e.g. to renew leases)."""
        self.stall_grace_pending = True

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
        """Run a duty; on backend trouble note it (one warning per outage) and retry at the
        duty's usual cadence, which is about as long as the backoff would be."""
        outage = self._outages.get(duty)
        if outage is None:
            outage = self._outages[duty] = Outage(duty, log)
        try:
            action()
        except AdapterError as exc:
            outage.failed(exc)
            if duty == STALL_DUTY:
                self.stall_grace_pending = True
            return
        except Exception:
            log.exception("%s failed; retrying on its next turn", duty)
            return
        outage.recovered()

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
