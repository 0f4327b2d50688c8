"""The job hot path in one round trip per step when storage and broker share a Redis server
and prefix: add = store + publish, take = claim + start, finish = record + ack/nack."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ... import codec
from ...adapters.base import APPEND_CAPS, Broker, Lease, Storage
from ...config import Config
from ...errors import LeaseLost
from ...jobpath import FOREIGN_RETRY, Claimed, JobPath, TakeRequest
from .broker import PROMOTE_LIMIT, RedisBroker
from .connection import MAX_BLOCK, client_for, script_source, translate_errors
from .packed import PackedScript, bulk, command, pack
from .records import decode_record, encode_fields, encode_new
from .storage import RedisStorage

log = logging.getLogger("oqron.jobpath")
#: The scripts cap the timeline at this length, like APPEND_CAPS does for the other paths.
TIMELINE_CAP = 100
assert APPEND_CAPS["timeline"] == TIMELINE_CAP


#: Forks of this process so far: cheaper to compare on every job than os.getpid() (a system call).
_forks = [0]
os.register_at_fork(after_in_child=lambda: _forks.__setitem__(0, _forks[0] + 1))

#: Every queue has 7 keys (see lib.lua); a finish also names the consumer's set.
QUEUE_KEYS = 7
#: job_add's fixed arguments before the records.
ADD_HEAD = 7
#: Records per job_add call: one call keeps Redis busy ~10 ms; the calls of a bulk add are
#: pipelined, so the client packs the next batch while the server stores the last.
ADD_BATCH = 500
FINISH_KEYS = QUEUE_KEYS + 1


@dataclass(frozen=True)
class TakeParts:
    numkeys: int
    numargs: int
    keys: bytes
    before: bytes  # the arguments before the start time
    after: bytes  # and after it

    def args(self, started: float | None) -> bytes:
        """None: the server's clock gives the start time (a take sent before a blocking wait)."""
        return self.before + (b"$0\r\n\r\n" if started is None else bulk(codec.dumps(started))) + self.after


def _packed_records(records: Sequence[Mapping[str, Any]], uniform: bool) -> tuple[int, bytes]:
    """job_add's per-record arguments (id, status, field count, fields) for a batch, and how
    many there are. Records of one add share every value but id and data, so the rest is
    encoded once and reused while that holds (checked unless the caller says ``uniform``)."""
    parts: list[bytes] = []
    count = 0
    template: Mapping[str, Any] | None = None
    rest = b""
    for record in records:
        if template is None or (not uniform and any(
            record[k] is not v and record[k] != v for k, v in template.items()
        )):
            template = {k: v for k, v in record.items() if k not in ("id", "data")}
            shared = encode_new(template)  # every new record has data; it is packed per record
            rest = pack(shared)
            width = len(shared) // 2 + 1
        data = codec.dumpb(record["data"])
        parts.append(pack([record["id"], record["status"], width, "data", data]) + rest)
        count += 3 + 2 * width
    return count, b"".join(parts)


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
        self._project = codec.dumps(config.project)
        self._environment = codec.dumps(config.environment)
        self._queue_keys: dict[str, bytes] = {}
        self._add_heads: dict[tuple[Any, ...], bytes] = {}
        self._consumer: Any = None
        self._consumer_forks = -1
        self._add_script = PackedScript(script_source("job_add"))
        self._take_script = PackedScript(script_source("job_take"))
        self._finish_script = PackedScript(script_source("job_finish"))
        self._next_script = PackedScript(script_source("job_next"))
        self._take_parts: dict[tuple[Any, ...], TakeParts] = {}
        self._finish_keys: dict[tuple[str, str], bytes] = {}

    @property
    def consumer_client(self) -> Any:
        """A connection of its own for the consumer loop: no pool checkout per call (the loop
        is one thread; producers keep using the pooled client)."""
        if self._consumer_forks != _forks[0]:  # first use, or forked since
            self._consumer, self._consumer_forks = client_for(self.broker.url, single=True), _forks[0]
        return self._consumer

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
        uniform: bool = False,
    ) -> list[bool]:
        if not records:
            return []
        keys = self._queue_keys.get(queue)
        if keys is None:
            keys = self._queue_keys[queue] = pack(self.broker.queue_keys(queue))
        head_key = (queue, strategy, priority, delay, publish)
        head = self._add_heads.get(head_key)
        if head is None:
            head = pack([self.broker.prefix, queue, strategy or "", priority, int(delay * 1000),
                         "1" if publish else "0", ""])
            if len(self._add_heads) < 1000:  # delays vary freely: keep the cache bounded
                self._add_heads[head_key] = head
        commands = []
        for first in range(0, len(records), ADD_BATCH):
            count, body = _packed_records(records[first:first + ADD_BATCH], uniform)
            commands.append((QUEUE_KEYS, QUEUE_KEYS + ADD_HEAD + count, keys + head + body))
        replies = self._add_script.pipeline(self.broker.client, commands)
        return [bool(flag) for flags in replies for flag in flags]

    def _take(self, request: TakeRequest) -> TakeParts:
        """The packed keys and arguments of a take; only the start time changes per call."""
        defaults = tuple(request.max_attempts.get(queue, 1) for queue in request.queues)
        cache_key = (tuple(request.queues), request.consumer, request.lease_ttl, defaults)
        parts = self._take_parts.get(cache_key)
        if parts is None:
            broker = self.broker
            keys = [broker.consumer_key(request.consumer), f"{broker.prefix}lease_seq"]
            groups: list[Any] = []
            for queue, default in zip(request.queues, defaults, strict=True):
                keys += broker.queue_keys(queue)
                groups += [queue, default]
            before: list[str | int] = [request.consumer, int(request.lease_ttl * 1000), PROMOTE_LIMIT,
                                       "", broker.prefix, codec.dumps(request.consumer)]
            after = [self._project, self._environment, int(FOREIGN_RETRY * 1000), *groups]
            parts = TakeParts(len(keys), len(before) + 1 + len(after), pack(keys), pack(before), pack(after))
            self._take_parts[cache_key] = parts
        return parts

    def _taken(self, request: TakeRequest, reply: list[Any]) -> Claimed | int | None:
        """The started job a take replied with, or the ms until a delayed job is due (-1)."""
        if not reply[0]:
            return int(reply[1])
        lease = Lease(reply[0], reply[1], reply[2], request.consumer)
        record = decode_record(reply[3])
        if record.get("corrupt"):
            self.fail_corrupt(lease, record)
            return 0
        return Claimed(lease, record)

    @translate_errors
    def take(self, request: TakeRequest, timeout: float = 0.0) -> Claimed | None:
        markers = [self.broker.marker_key(queue) for queue in request.queues]
        deadline = time.monotonic() + timeout
        parts = self._take(request)
        client = self.consumer_client
        reply = self._take_script(client, parts.numkeys, parts.numkeys + parts.numargs,
                                  parts.keys + parts.args(time.time()))
        while True:
            taken = self._taken(request, reply)
            if not isinstance(taken, int):
                return taken
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            wait = remaining if taken < 0 else min(remaining, taken / 1000 + 0.001)
            # Wait for a marker and take in one send: the take runs as soon as the wait ends,
            # so a woken consumer gets its job in the wait's own round trip.
            block = command("BZPOPMIN", *markers, f"{max(0.001, min(wait, MAX_BLOCK)):.3f}")
            _, reply = self._take_script.after(client, block, parts.numkeys, parts.numkeys + parts.numargs,
                                               parts.keys + parts.args(None))

    def _finish(
        self, claimed: Claimed, changes: Mapping[str, Any], entry: Mapping[str, Any], ack: bool, delay: float
    ) -> tuple[int, bytes, int, bytes]:
        """Packed keys (count, bytes) and arguments (count, bytes) of a finish."""
        lease = claimed.lease
        keys = self._finish_keys.get((lease.queue, lease.consumer))
        if keys is None:
            keys = pack([*self.broker.queue_keys(lease.queue), self.broker.consumer_key(lease.consumer)])
            self._finish_keys[(lease.queue, lease.consumer)] = keys
        args = [self.broker.prefix, lease.job_id, lease.token, "ack" if ack else "nack",
                int(delay * 1000), lease.queue, "", codec.dumps(entry), *encode_fields(changes)]
        return FINISH_KEYS, keys, len(args), pack(args)

    @translate_errors
    def finish(
        self,
        claimed: Claimed,
        changes: Mapping[str, Any],
        entry: Mapping[str, Any],
        *,
        ack: bool,
        delay: float = 0.0,
        then: TakeRequest | None = None,
    ) -> tuple[list[str], Claimed | None]:
        nkeys, keys, nargs, args = self._finish(claimed, changes, entry, ack, delay)
        client = self.consumer_client
        if then is None:
            finished, taken = self._finish_script(client, nkeys, nkeys + nargs, keys + args), None
        else:
            take = self._take(then)
            body = b"".join((keys, take.keys, bulk(nkeys), bulk(nargs), args, take.args(time.time())))
            finished, reply = self._next_script(
                client, nkeys + take.numkeys, nkeys + take.numkeys + 2 + nargs + take.numargs, body
            )
            taken = self._taken(then, reply)
        if not finished[0]:
            raise LeaseLost(
                f"job {claimed.job_id}: attempt with lease {claimed.lease.token} no longer owns the job"
            )
        if not finished[1]:
            log.warning("job %s: lease lost after recording the end of its attempt", claimed.job_id)
        children = [codec.loads(line) for line in finished[2].split("\n")] if finished[2] else []
        return children, None if isinstance(taken, int) else taken
