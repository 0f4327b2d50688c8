"""What the leader repairs: jobs whose lease expired (their node died, hung or lost the network)
and jobs that storage holds but the broker does not (their producer died between the two)."""

from __future__ import annotations

import logging
import time
from collections import defaultdict

from .. import dag
from ..config import Config
from ..job import DELAYED, WAITING, WAITING_CHILDREN
from ..lifecycle import Lifecycle
from ..registry import Registry

log = logging.getLogger("oqron.recovery")

RECONCILE_BATCH = 500
#: A waiting job this old that the broker does not hold was never published.
UNPUBLISHED_AFTER = 60.0


class Recovery:
    def __init__(self, lifecycle: Lifecycle, registry: Registry, config: Config) -> None:
        self.lifecycle = lifecycle
        self.registry = registry
        self.config = config
        self._cursor: dict[tuple[str, str], int] = defaultdict(int)

    def recover_stalled(self, queues: list[str]) -> int:
        """Expired leases back to waiting (stalled_count + 1), or failed past the limit."""
        handled = 0
        for name in queues:
            ids = self.lifecycle.recover_expired(
                name, self.registry.queues.get(name), self.config.max_stalled_count
            )
            if ids:
                log.warning("queue %s: %d job(s) stalled (lease expired) and were requeued", name, len(ids))
            handled += len(ids)
        return handled

    def reconcile(self, queues: list[str], now: float | None = None) -> int:
        """Publish jobs that are waiting (or due) in storage but may be missing from the broker;
        resolve dependency waits whose parents are done. Scans a batch per queue per call,
        resuming where the last call stopped, so a long backlog is covered over time."""
        now = time.time() if now is None else now
        published = 0
        for name in queues:
            published += self._republish(name, WAITING, now)
            published += self._republish(name, DELAYED, now)
            self._resolve_children(name)
        return published

    def _page(self, name: str, status: str) -> list[dict]:  # type: ignore[type-arg]
        key = (name, status)
        records = self.lifecycle.storage.list_jobs(
            name, status, limit=RECONCILE_BATCH, offset=self._cursor[key], oldest_first=True
        )
        self._cursor[key] = 0 if len(records) < RECONCILE_BATCH else self._cursor[key] + len(records)
        return records

    def _republish(self, name: str, status: str, now: float) -> int:
        stale = []
        for record in self._page(name, status):
            since = record.get("run_at") if status == DELAYED else record.get("queued_at")
            if since is not None and now - float(since) > UNPUBLISHED_AFTER:
                stale.append(record)
        by_priority: dict[int, list[str]] = defaultdict(list)
        for record in stale:
            by_priority[int(record.get("priority") or 0)].append(record["id"])
        for priority, ids in by_priority.items():
            self.lifecycle.broker.publish(name, ids, priority=priority)  # no-op for held ids
        return len(stale)

    def _resolve_children(self, name: str) -> None:
        for record in self._page(name, WAITING_CHILDREN):
            dag.resolve(self.lifecycle, record["id"])
