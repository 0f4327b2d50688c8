"""Run jobs in this process, without a master: for unit tests, scripts and notebooks.

``Runner(...).run_until_empty()`` claims and executes jobs until nothing is claimable. With
``raise_errors=True`` the first handler exception is re-raised (after being recorded), like
dramatiq's ``join(fail_fast=True)``. Works on every adapter; typically used with ``memory://``.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence

from ..container import Container
from ..lifecycle import Lifecycle
from ..registry import Registry
from ..registry import registry as default_registry
from .executor import Executor


class Runner:
    def __init__(
        self,
        queues: Sequence[str] | None = None,
        *,
        lifecycle: Lifecycle | None = None,
        registry: Registry | None = None,
        worker_id: str = "inline",
        lease_ttl: float = 60.0,
    ) -> None:
        self.registry = registry or default_registry
        self.lifecycle = lifecycle or Container.get().lifecycle
        self.queues = list(queues) if queues is not None else self.registry.handled()
        self.worker_id = worker_id
        self.lease_ttl = lease_ttl
        self.executor = Executor(self.lifecycle, self.registry, worker_id, propagate=(KeyboardInterrupt,))

    def run_one(self, timeout: float = 0.0, raise_errors: bool = False) -> str | None:
        """Claim and run one job; returns its status afterwards, or None if none was claimable."""
        claimed = self.lifecycle.claim(self.queues, self.worker_id, self.lease_ttl, timeout)
        if claimed is None:
            return None
        status = self.executor.execute(claimed).status
        if raise_errors and self.executor.last_error is not None:
            raise self.executor.last_error
        return status

    def run_until_empty(
        self, *, raise_errors: bool = False, wait_delayed: bool = False, timeout: float = 60.0
    ) -> Counter[str]:
        """Run jobs until none is claimable. With ``wait_delayed``, also wait for delayed jobs
        (and retries) to come due, up to ``timeout`` seconds. Returns a count per status."""
        deadline = time.monotonic() + timeout
        outcomes: Counter[str] = Counter()
        while True:
            status = self.run_one(raise_errors=raise_errors)
            if status is not None:
                outcomes[status] += 1
                continue
            if not wait_delayed or not self._pending():
                return outcomes
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"jobs still pending after {timeout} s")
            status = self.run_one(timeout=min(remaining, 1.0), raise_errors=raise_errors)
            if status is not None:
                outcomes[status] += 1

    def _pending(self) -> bool:
        broker = self.lifecycle.broker
        return any(broker.counts(q)["delayed"] or broker.counts(q)["waiting"] for q in self.queues)
