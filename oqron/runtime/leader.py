"""Leader election on the lock adapter, one key per shard, with fencing epochs.

A master campaigns for the key of each shard it owns (``scheduler:leader`` with one shard,
``scheduler:leader:shard:{i}`` with several). The key has a 2.5 s TTL and the leader renews
it every 0.8 s; standbys try every 0.2 s, so a dead leader is replaced at most 2.7 s after its
last renewal (DESIGN: failover within 3 s) and a leader that shuts down (which releases the
key) within 0.2 s. A renewal may be late by 1.4 s before the leader steps down.

Safety does not rest on the lock alone: a leader counts its lease from the moment it *sent*
the acquire/renew (monotonic clock) and stops acting as leader before that lease can have
expired on the server. Every leader-only write carries the shard's epoch, which rises with
each new leader, so a write from a deposed leader that was frozen past its TTL is refused.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable

from ..adapters.base import Lock
from ..config import Clustering
from ..errors import AdapterError
from .outage import Outage

log = logging.getLogger("oqron.leader")

LEADER_TTL = 2.5
RENEW_EVERY = 0.8
CAMPAIGN_EVERY = 0.2
#: Longest pause between campaigns while the lock backend is unavailable.
CAMPAIGN_BACKOFF_CAP = 1.0
#: Stop acting this share of the TTL (at most 0.3 s) before the lease could expire on the server.
SAFETY = 0.1


def shard_of(name: str, total_shards: int) -> int:
    """The shard a definition belongs to: uint32 big-endian of md5(name)[:4], modulo shards."""
    return int.from_bytes(hashlib.md5(name.encode()).digest()[:4], "big") % total_shards


class LeaderElection:
    """Campaigns for one key; ``epoch`` is set only while this node may act as leader."""

    def __init__(
        self,
        lock: Lock,
        key: str,
        owner: str,
        ttl: float = LEADER_TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.lock = lock
        self.key = key
        self.owner = owner
        self.ttl = ttl
        self.clock = clock
        self.epoch: int | None = None
        self.valid_until = 0.0
        self.next_action = 0.0
        self.outage = Outage(f"leader election ({key})", log, cap=CAMPAIGN_BACKOFF_CAP)

    def is_leader(self) -> bool:
        """True only while the lease taken or renewed last is certainly still ours."""
        if self.epoch is not None and self.clock() >= self.valid_until - min(0.3, self.ttl * SAFETY):
            self._step_down("lease not renewed in time")
        return self.epoch is not None

    def tick(self) -> None:
        """Renew (leader) or campaign (standby) when it is time; cheap to call often."""
        now = self.clock()
        if now < self.next_action:
            return
        if self.is_leader():
            self._renew(now)
        else:
            self._campaign(now)

    def _renew(self, sent: float) -> None:
        self.next_action = sent + RENEW_EVERY
        try:
            renewed = self.lock.renew(self.key, self.owner, self.ttl)
        except AdapterError as exc:
            self.outage.failed(exc)
            return  # is_leader() steps down when the lease runs out
        self.outage.recovered()
        if renewed:
            self.valid_until = sent + self.ttl
        else:
            self._step_down("lock taken over")

    def _campaign(self, sent: float) -> None:
        self.next_action = sent + CAMPAIGN_EVERY
        try:
            epoch = self.lock.acquire(self.key, self.owner, self.ttl)
        except AdapterError as exc:
            self.next_action = sent + max(CAMPAIGN_EVERY, self.outage.failed(exc))
            return
        self.outage.recovered()
        if epoch is not None:
            self.epoch, self.valid_until = epoch, sent + self.ttl
            self.next_action = sent + RENEW_EVERY
            log.info("leader of %s (epoch %d)", self.key, epoch)

    def _step_down(self, why: str) -> None:
        log.warning("no longer leader of %s: %s", self.key, why)
        self.epoch = None
        self.next_action = 0.0

    def release(self) -> None:
        """Give the key up at once (graceful shutdown), so a standby takes over immediately."""
        if self.epoch is None:
            return
        self.epoch = None
        try:
            self.lock.release(self.key, self.owner)
        except AdapterError as exc:
            log.warning("cannot release %s (it will expire): %s", self.key, exc)


class Leadership:
    """The elections of the shards a master owns."""

    def __init__(self, lock: Lock, owner: str, clustering: Clustering) -> None:
        self.total = clustering.total_shards
        base = "scheduler:leader"
        self.elections = {
            shard: LeaderElection(lock, base if self.total == 1 else f"{base}:shard:{shard}", owner)
            for shard in clustering.owned_shards
        }

    def tick(self) -> None:
        for election in self.elections.values():
            election.tick()

    def next_action(self) -> float:
        return min(e.next_action for e in self.elections.values())

    def leading(self) -> list[int]:
        return sorted(shard for shard, e in self.elections.items() if e.is_leader())

    def epoch_for(self, name: str) -> int | None:
        """The fencing epoch to write with for definition ``name``, None if not its leader."""
        election = self.elections.get(shard_of(name, self.total))
        if election is None or not election.is_leader():
            return None
        return election.epoch

    def release(self) -> None:
        for election in self.elections.values():
            election.release()
