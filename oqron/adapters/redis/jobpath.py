"""The job hot path in one round trip per step when storage and broker share a Redis server
and prefix: add = store + publish, take = claim + start, finish = record + ack/nack."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from ... import codec
from ...adapters.base import APPEND_CAPS, Broker, Lease, Storage
from ...config import Config
from ...errors import LeaseLost
from ...jobpath import FOREIGN_RETRY, Claimed, JobPath
from .broker import PROMOTE_LIMIT, RedisBroker
from .connection import MAX_BLOCK, ScriptSet, translate_errors
from .records import RAW_FIELDS, decode_record, encode_fields
from .storage import RedisStorage

SCRIPTS = ("job_add", "job_take", "job_finish")
#: The scripts cap the timeline at this length, like APPEND_CAPS does for the other paths.
TIMELINE_CAP = 100
assert APPEND_CAPS["timeline"] == TIMELINE_CAP


class RedisJobPath(JobPath):
    storage: RedisStorage
    broker: RedisBroker

    @staticmethod
    def serves(storage: Storage, broker: Broker) -> bool:
        return (
            isinstance(storage, RedisStorage)
            and isinstance(broker, RedisBroker)
            and storage.url == broker.url
            and storage.prefix == broker.prefix
            and broker.clock is None
        )

    def __init__(self, storage: Storage, broker: Broker, config: Config) -> None:
        super().__init__(storage, broker, config)
        self._scripts: ScriptSet | None = None
        self._client: Any = None
        self._project = codec.dumps(config.project)
        self._environment = codec.dumps(config.environment)

    @property
    def scripts(self) -> ScriptSet:
        client = self.broker.client
        if client is not self._client or self._scripts is None:
            self._client, self._scripts = client, ScriptSet(client, SCRIPTS)
        return self._scripts

    @translate_errors
    def add(
        self,
        queue: str,
        records: Sequence[Mapping[str, Any]],
        *,
        publish: bool,
        strategy: str | None,
        priority: int,
        delay: float,
    ) -> list[bool]:
        if not records:
            return []
        args: list[Any] = [self.broker.prefix, queue, strategy or "", priority, int(delay * 1000),
                           "1" if publish else "0", ""]
        for record in records:
            rest = {k: v for k, v in record.items() if k not in RAW_FIELDS}
            args += [record["id"], record["status"], len(rest), *encode_fields(rest)]
        flags = self.scripts["job_add"](keys=self.broker.queue_keys(queue), args=args)
        return [bool(flag) for flag in flags]

    @translate_errors
    def take(
        self,
        queues: Sequence[str],
        consumer: str,
        lease_ttl: float,
        timeout: float,
        max_attempts: Mapping[str, int],
    ) -> Claimed | None:
        broker = self.broker
        keys = [broker.consumer_key(consumer), f"{broker.prefix}lease_seq"]
        groups: list[Any] = []
        for queue in queues:
            keys += broker.queue_keys(queue)
            groups += [queue, max_attempts.get(queue, 1)]
        markers = [broker.marker_key(queue) for queue in queues]
        deadline = time.monotonic() + timeout
        while True:
            args = [consumer, int(lease_ttl * 1000), PROMOTE_LIMIT, "", broker.prefix,
                    codec.dumps(consumer), codec.dumps(time.time()), self._project,
                    self._environment, int(FOREIGN_RETRY * 1000), *groups]
            result = self.scripts["job_take"](keys=keys, args=args)
            if result[0]:
                lease = Lease(result[0], result[1], result[2], consumer)
                record = decode_record(result[3])
                if record.get("corrupt"):
                    self.fail_corrupt(lease, record)
                    continue
                return Claimed(lease, record)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            next_due = int(result[1])
            wait = remaining if next_due < 0 else min(remaining, next_due / 1000 + 0.001)
            broker.client.bzpopmin(markers, timeout=max(0.001, min(wait, MAX_BLOCK)))

    @translate_errors
    def finish(
        self,
        claimed: Claimed,
        changes: Mapping[str, Any],
        entry: Mapping[str, Any],
        *,
        ack: bool,
        delay: float = 0.0,
    ) -> list[str]:
        lease = claimed.lease
        keys = [*self.broker.queue_keys(lease.queue), self.broker.consumer_key(lease.consumer)]
        args = [self.broker.prefix, lease.job_id, lease.token, "ack" if ack else "nack",
                int(delay * 1000), lease.queue, "", codec.dumps(entry), *encode_fields(changes)]
        result = self.scripts["job_finish"](keys=keys, args=args)
        if not result[0]:
            raise LeaseLost(f"job {lease.job_id}: attempt with lease {lease.token} no longer owns the job")
        children = result[2]
        return [codec.loads(line) for line in children.split("\n")] if children else []
