"""The job hot path in one round trip per step when storage and broker share a Redis server
and prefix: add = store + publish, take = claim + start, finish = record + ack/nack."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import redis

from ... import codec
from ...adapters.base import APPEND_CAPS, Broker, Lease, Storage
from ...config import Config
from ...errors import LeaseLost
from ...jobpath import FOREIGN_RETRY, Claimed, Ending, Finished, JobPath, TakeRequest
from .broker import PROMOTE_LIMIT, RedisBroker
from .connection import MAX_BLOCK, client_for, forks, script_text, translate_errors
from .packed import (
    FunctionLibrary,
    PackedScript,
    bulk,
    command,
    cork,
    pack,
    pack_fields,
    read_reply,
    roundtrip,
    send_packed,
    uncork,
)
from .records import decode_record, encode_fields, encode_new, encoder_of
from .storage import RedisStorage

log = logging.getLogger("oqron.jobpath")
#: The scripts cap the timeline at this length, like APPEND_CAPS does for the other paths.
TIMELINE_CAP = 100
assert APPEND_CAPS["timeline"] == TIMELINE_CAP

#: Every queue has 7 keys (see lib.lua); a finish also names the consumer's set.
QUEUE_KEYS = 7
#: job_add's fixed arguments before the records.
ADD_HEAD = 8
#: Records per job_add call: one call keeps Redis busy ~10 ms; the calls of a bulk add are
#: pipelined, so the client packs the next batch while the server stores the last. The first
#: call, which waits for its reply (see PackedScript.pipeline), is kept short.
ADD_BATCH = 500
FIRST_ADD_BATCH = 50


def _add_batches(total: int) -> Iterator[tuple[int, int]]:
    """(first, last) record indexes of each job_add call of an add of ``total`` records."""
    first = 0
    size = FIRST_ADD_BATCH
    while first < total:
        yield first, min(first + size, total)
        first, size = first + size, ADD_BATCH
FINISH_KEYS = QUEUE_KEYS + 1
#: The hot path's scripts, loaded as one function library.
HOT_PATH = FunctionLibrary(("job_add", "job_take", "job_finish", "job_next"), script_text)


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


#: Fields of a new record that differ from one add to the next: packed for each record. Every
#: new record has them (none is optional). The rest are shared by the records of an add, and
#: usually by every add of a queue.
_PER_RECORD = tuple((field, encoder_of(field)) for field in ("data", "created_at", "queued_at", "timeline"))
_PACKED_APART = frozenset({"id", "queue", "status", *(field for field, _ in _PER_RECORD)})


@dataclass(frozen=True)
class _Shared:
    """The shared fields of the records last packed: the values (copies) and their packed form."""

    values: tuple[tuple[str, Any], ...]
    packed: bytes
    width: int  # field/value pairs per record


class RecordPacker:
    """job_add's per-record arguments (id, status, field count, fields). The shared fields are
    encoded once and their packed form kept, from one record and one add to the next, while
    the next record carries the same values: a single add then encodes only what is its own
    (23 -> 8 us per add here, a fifth of the producer's own CPU per add). Producer threads
    share one packer: each works on the snapshot it read, and replaces it whole."""

    def __init__(self) -> None:
        self._shared: _Shared | None = None

    def pack(self, records: Sequence[Mapping[str, Any]], uniform: bool) -> tuple[int, bytes]:
        """The arguments of a batch of records, and how many there are. ``uniform``: the
        caller knows the records share every field but id and the per-record ones."""
        parts: list[bytes] = []
        count = 0
        shared = self._shared
        for index, record in enumerate(records):
            if shared is None or ((index == 0 or not uniform) and not _holds(shared, record)):
                shared = self._shared = _encode_shared(record)
            parts.append(pack((record["id"], record["status"], shared.width)))
            own: list[str | bytes] = []
            for field, encode in _PER_RECORD:
                own += (field, encode(record[field]))
            parts.append(pack_fields(own))
            parts.append(shared.packed)
            count += 3 + 2 * shared.width
        return count, b"".join(parts)


def _holds(shared: _Shared, record: Mapping[str, Any]) -> bool:
    """Whether ``record``'s shared fields are those ``shared`` was made from."""
    if len(record) != len(shared.values) + len(_PACKED_APART):
        return False
    for field, value in shared.values:
        mine = record.get(field, _MISSING)
        if mine is not value and mine != value:
            return False
    return True


def _encode_shared(record: Mapping[str, Any]) -> _Shared:
    missing = _PACKED_APART - record.keys()
    if missing:
        raise ValueError(f"a new record lacks {sorted(missing)}")
    flat = encode_new(record, skip=_PACKED_APART)
    # Values kept to compare are copies: a record's lists and dicts are mutable, and a change
    # to one after this must not pass for the value packed here.
    values = tuple((field, codec.loads(codec.dumpb(value)) if isinstance(value, (dict, list)) else value)
                   for field, value in record.items() if field not in _PACKED_APART)
    return _Shared(values, pack(flat), len(flat) // 2 + len(_PER_RECORD))


_MISSING = object()


class RedisJobPath(JobPath):
    storage: RedisStorage
    broker: RedisBroker
    batches = True

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
        self._packer = RecordPacker()
        self._reply_poll = config.reply_poll
        self._consumer: Any = None
        self._consumer_forks = -1
        functions = HOT_PATH.functions
        self._add_script = functions["job_add"]
        self._take_script = functions["job_take"]
        self._finish_script = functions["job_finish"]
        self._next_script = functions["job_next"]
        self._take_parts: dict[tuple[Any, ...], TakeParts] = {}
        # per (queue, consumer): a finish's packed keys, and the arguments around its own ones
        self._finish_heads: dict[tuple[str, str], tuple[bytes, bytes, bytes]] = {}
        # Finishes sent ahead. Between steps, at most one list holds any: a failure moves what
        # is in flight to the unsent, and nothing is sent ahead while some are unsent.
        self._inflight: list[PendingFinish] = []  # sent, replies not read yet
        self._unsent: list[PendingFinish] = []  # to resend (their send or their reply failed)
        # The consumer socket while finishes sent ahead are held corked (see packed.cork): they
        # go out with the next step, in one segment.
        self._corked: Any = None
        # A step that takes jobs may have run on the server and lost its reply with the
        # connection: the jobs it leased never reach this process. They are the consumer's
        # leases newer than any this process saw; _hand_back_unseen puts them back.
        self._newest_seen = 0  # newest lease token a take's reply brought here
        # The queues whose last take found no job ready and none delayed: a take that may wait
        # then waits at once (whatever is made ready since leaves a wake-up marker), rather than
        # ask again first — one round trip less each time a child runs out of work.
        self._found_empty: frozenset[str] | None = None
        self._unseen_of: str | None = None  # the consumer whose take's reply was lost

    @property
    def consumer_client(self) -> Any:
        """A connection of its own for the consumer loop: no pool checkout per call (the loop
        is one thread; producers keep using the pooled client)."""
        if self._consumer_forks != forks[0]:  # first use, or forked since
            self._consumer, self._consumer_forks = client_for(self.broker.url, single=True), forks[0]
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
        new_ids: bool = False,
    ) -> list[bool]:
        if not records:
            return []
        keys = self._queue_keys.get(queue)
        if keys is None:
            keys = self._queue_keys[queue] = pack(self.broker.queue_keys(queue))
        head_key = (queue, strategy, priority, delay, publish, new_ids)
        head = self._add_heads.get(head_key)
        if head is None:
            head = pack([self.broker.prefix, queue, strategy or "", priority, int(delay * 1000),
                         "1" if publish else "0", "", "1" if new_ids else "0"])
            if len(self._add_heads) < 1000:  # delays vary freely: keep the cache bounded
                self._add_heads[head_key] = head
        def calls() -> Iterator[tuple[int, int, bytes]]:  # packed one by one, as they are sent
            for first, last in _add_batches(len(records)):
                count, body = self._packer.pack(records[first:last], uniform)
                yield QUEUE_KEYS, QUEUE_KEYS + ADD_HEAD + count, keys + head + body

        replies = self._add_script.pipeline(self.broker.client, calls(), poll=self._reply_poll)
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

    def _taken(self, request: TakeRequest, replies: list[Any]) -> list[Claimed] | int:
        """The started jobs a take replied with, or the ms until a delayed job is due (-1)."""
        if not replies[0][0]:
            next_due = int(replies[0][1])
            self._found_empty = frozenset(request.queues) if next_due < 0 else None
            return next_due
        self._found_empty = None
        claimed = []
        for reply in replies:
            lease = Lease(reply[0], reply[1], reply[2], request.consumer)
            self._newest_seen = max(self._newest_seen, int(lease.token))
            record = decode_record(reply[3])  # a damaged field is named in "corrupt"
            if record.get("corrupt"):
                self.fail_corrupt(lease, record)
            else:
                claimed.append(Claimed(lease, record, ready_behind=int(reply[4])))
        return claimed if claimed else 0

    def take(self, request: TakeRequest, timeout: float = 0.0) -> Claimed | None:
        taken = self.take_many(request, 1, timeout)
        return taken[0] if taken else None

    @translate_errors
    def take_many(self, request: TakeRequest, count: int, timeout: float = 0.0) -> list[Claimed]:
        markers = [self.broker.marker_key(queue) for queue in request.queues]
        deadline = time.monotonic() + timeout
        parts = self._take(request)
        numkeys, items = parts.numkeys, parts.numkeys + parts.numargs + 1
        head = parts.keys + bulk(count)
        taken: list[Claimed] | int = -1
        if not (timeout > 0 and self._found_empty == frozenset(request.queues)):
            taken = self._taken(request, self._call(self._take_script, numkeys, items,
                                                    head + parts.args(time.time()), taker=request.consumer))
        while True:
            if not isinstance(taken, int):
                return taken
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            wait = remaining if taken < 0 else min(remaining, taken / 1000 + 0.001)
            # Wait for a marker and take in one send: the take runs as soon as the wait ends,
            # so a woken consumer gets its job in the wait's own round trip.
            block = command("BZPOPMIN", *markers, f"{max(0.001, min(wait, MAX_BLOCK)):.3f}")
            reply = self._call(self._take_script, numkeys, items, head + parts.args(None), first=block,
                               taker=request.consumer)
            taken = self._taken(request, reply)

    def _finish_parts(self, ending: Ending) -> tuple[bytes, int, bytes]:
        """Packed keys and arguments (count, bytes) of a finish."""
        lease = ending.claimed.lease
        head = self._finish_heads.get((lease.queue, lease.consumer))
        if head is None:
            keys = pack([*self.broker.queue_keys(lease.queue), self.broker.consumer_key(lease.consumer)])
            head = self._finish_heads[(lease.queue, lease.consumer)] = (
                keys, bulk(self.broker.prefix), pack((lease.queue, "")))
        keys, prefix, queue_and_now = head
        fields = encode_fields(ending.changes)
        args = b"".join((prefix, pack((lease.job_id, lease.token, "ack" if ending.ack else "nack",
                                       int(ending.delay * 1000))),
                         queue_and_now, bulk(codec.dumpb(ending.entry)), pack_fields(fields)))
        return keys, 8 + len(fields), args

    def _finish(self, ending: Ending) -> tuple[int, int, bytes]:
        """job_finish's call: number of keys, of keys and arguments, and the packed body."""
        keys, nargs, args = self._finish_parts(ending)
        return FINISH_KEYS, FINISH_KEYS + nargs, keys + args

    def _finish_and_take(self, ending: Ending, then: TakeRequest, count: int) -> tuple[int, int, bytes]:
        """job_next's call (a finish and a take of up to ``count`` jobs)."""
        keys, nargs, args = self._finish_parts(ending)
        take = self._take(then)
        body = b"".join((keys, take.keys, bulk(FINISH_KEYS), bulk(nargs), bulk(count), args,
                         take.args(time.time())))
        numkeys = FINISH_KEYS + take.numkeys
        return numkeys, numkeys + 3 + nargs + take.numargs, body

    @translate_errors
    def finish(
        self, ending: Ending, *, then: TakeRequest | None = None, count: int = 1
    ) -> tuple[list[str], list[Claimed]]:
        taken: list[Claimed] | int = 0
        if then is None:
            finished = self._call(self._finish_script, *self._finish(ending))
        else:
            finished, reply = self._call(self._next_script, *self._finish_and_take(ending, then, count),
                                         taker=then.consumer)
            taken = self._taken(then, reply)
        claimed = ending.claimed
        children = self._children(claimed, finished)
        if children is None:
            raise LeaseLost(
                f"job {claimed.job_id}: attempt with lease {claimed.lease.token} no longer owns the job"
            )
        return children, [] if isinstance(taken, int) else taken

    @staticmethod
    def _children(claimed: Claimed, finished: list[Any]) -> list[str] | None:
        """A finish's reply: the job's children ids, or None if the attempt was refused."""
        if not finished[0]:
            return None
        if not finished[1]:
            log.warning("job %s: lease lost after recording the end of its attempt", claimed.job_id)
        return [codec.loads(line) for line in finished[2].split("\n")] if finished[2] else []

    def finish_later(
        self, ending: Ending, finished: Finished, then: TakeRequest | None = None, count: int = 1
    ) -> None:
        """Sent at once, the reply read with the next step on the consumer connection: the
        child runs its next job while Redis records this one. A finish that takes (``then``)
        leaves at once with those held before it; the others are held corked."""
        claimed = ending.claimed
        if then is None:
            command = self._finish_script.command(*self._finish(ending))
        else:
            command = self._next_script.command(*self._finish_and_take(ending, then, count))
        pending = PendingFinish(claimed, command, finished, then)
        client = self.consumer_client
        with client.single_connection_lock:
            # An earlier send failed: keep the order, resend with the next step (a take, only
            # once the jobs taken by a step whose reply was lost are handed back).
            if self._unsent or (then is not None and self._unseen_of is not None):
                self._unsent.append(pending)
                return
            try:
                if then is not None and self._corked is None:  # leaves at once, alone: no cork
                    self._send(client.connection, pending.command)
                else:
                    self._send_corked(client.connection, pending.command)
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                log.debug("job %s: finish not sent (%s); resent with the next step", claimed.job_id, exc)
                self._unsent.append(pending)
            else:
                self._inflight.append(pending)
                if then is not None:
                    self._uncork()

    @translate_errors
    def taken_ahead(self) -> list[Claimed]:
        client = self.consumer_client
        with client.single_connection_lock:
            while True:  # a reply may send the finish back to the unsent (the library was lost)
                if any(pending.then is not None for pending in self._unsent):
                    self._hand_back_unseen()
                    self._resend_unsent(client)
                ahead = [pending for pending in self._inflight if pending.then is not None]
                if not ahead:
                    break
                self._settle_pending(client, until=ahead[-1])
            taken, self._ahead = self._ahead, []
        return taken

    @translate_errors
    def flush(self) -> None:
        client = self.consumer_client
        with client.single_connection_lock:
            self._uncork()
            self._hand_back_unseen()
            self._resend_unsent(client)
            self._settle_pending(client)

    def _call(
        self, script: PackedScript, numkeys: int, items: int, body: bytes, first: bytes | None = None,
        taker: str | None = None,
    ) -> Any:
        """One step on the consumer connection: finishes still unsent go first, the replies of
        finishes in flight are read before this step's own. ``taker``: the consumer, when the
        step takes jobs."""
        client = self.consumer_client
        command = script.command(numkeys, items, body)
        with client.single_connection_lock:
            self._hand_back_unseen()
            self._resend_unsent(client)
            try:
                return self._step(client, script, command, first)
            except (redis.ConnectionError, redis.TimeoutError):
                if taker is not None:  # it may have run: what it took is handed back first
                    self._unseen_of = taker
                raise

    def _step(self, client: Any, script: PackedScript, command: bytes, first: bytes | None) -> Any:
        """Send the step (with the finishes held before it) and read its reply."""
        connection = client.connection
        data = command if first is None else first + command
        try:
            self._send(connection, data)
        except redis.ConnectionError:  # found dead (the server restarted): once more, anew
            self._hand_back_unseen()
            self._resend_unsent(client)
            self._send(connection, data)
        self._uncork()  # this step goes out with the finishes held before it
        self._settle_pending(client)
        try:
            if first is not None:
                read_reply(connection)
            return read_reply(connection)
        except redis.exceptions.NoScriptError:  # a restarted or flushed server
            self._load(script)
            return roundtrip(connection, command)

    def _send_corked(self, connection: Any, data: bytes) -> None:
        """Send a finish ahead, held in the kernel until the next step (or 200 ms): a child
        running short jobs then costs Redis one read per batch instead of one per job."""
        if self._corked is None or self._corked is not getattr(connection, "_sock", None):
            self._uncork()
            self._corked = cork(connection)
        self._send(connection, data)

    def _uncork(self) -> None:
        if self._corked is not None:
            uncork(self._corked)
            self._corked = None

    def _send(self, connection: Any, data: bytes) -> None:
        try:
            send_packed(connection, data)
        except (redis.ConnectionError, redis.TimeoutError):
            self._lose_inflight()  # their replies went with the connection
            raise

    def _lose_inflight(self) -> None:
        """The connection broke: the steps in flight go back to the unsent, to be resent (a
        finish recorded already is refused by its token, harmlessly, and takes nothing). One
        that took jobs may have run: those jobs are handed back before anything is resent."""
        for pending in self._inflight:
            if pending.then is not None:
                self._unseen_of = pending.then.consumer
        self._unsent[:0] = self._inflight
        self._inflight.clear()

    def _hand_back_unseen(self) -> None:
        """After a lost reply of a step that took jobs, and before any step is resent or sent:
        the consumer's leases newer than any this process saw were taken by that step and
        would otherwise wait for their lease to expire and be charged a stall. They go back to
        the head of their queue without charging an attempt."""
        consumer = self._unseen_of
        if consumer is None:
            return
        for lease in self.broker.leases_of(consumer):
            if int(lease.token) > self._newest_seen:
                log.warning("job %s: taken by a step whose reply was lost; handed back", lease.job_id)
                self.release(lease, "requeued: taken by a step whose reply was lost")
        self._unseen_of = None

    @translate_errors
    def last_token(self) -> int | None:
        return int(self.broker.client.get(f"{self.broker.prefix}lease_seq") or 0)

    def _settle_pending(self, client: Any, until: PendingFinish | None = None) -> None:
        """Read the replies of the finishes in flight, in order (all, or up to ``until``), and
        report each."""
        while self._inflight:
            pending = self._inflight[0]
            try:
                reply = read_reply(client.connection)
            except redis.exceptions.NoScriptError:  # not run (the server lost its scripts):
                self._inflight.pop(0)  # resent with the next step, once the replies queued
                self._load(self._finish_script)  # behind this one are read
                self._unsent.append(pending)
                continue
            except (redis.ConnectionError, redis.TimeoutError):
                self._lose_inflight()  # whether these ran is unknown
                raise
            self._inflight.pop(0)
            self._settled(pending, reply, resent=False)
            if pending is until:
                return

    def _resend_unsent(self, client: Any) -> None:
        if self._unsent:
            self._uncork()  # each resend waits for its reply
        while self._unsent:
            pending = self._unsent[0]
            script = self._finish_script if pending.then is None else self._next_script
            try:
                reply = script.call(self.broker.client, client.connection, pending.command)
            except (redis.ConnectionError, redis.TimeoutError):
                if pending.then is not None:  # it may have run (its finish accepted, this time)
                    self._unseen_of = pending.then.consumer
                raise
            self._unsent.pop(0)
            self._settled(pending, reply, resent=True)

    def _settled(self, pending: PendingFinish, reply: Any, resent: bool) -> None:
        if pending.then is not None:  # a finish that took the next jobs
            reply, took = reply
            taken = self._taken(pending.then, took)
            if not isinstance(taken, int):
                self._ahead.extend(taken)
        self._report(pending, self._children(pending.claimed, reply), resent)

    def _load(self, script: PackedScript) -> None:
        """Load the library over the pooled client: replies may still be queued on the
        consumer connection."""
        script.load(self.broker.client)

    @staticmethod
    def _report(pending: PendingFinish, children: list[str] | None, resent: bool) -> None:
        if children is None and resent:
            log.info("job %s: its end was refused when resent; it was most likely recorded before "
                     "the connection failed", pending.claimed.job_id)
            return
        try:
            pending.finished(children)
        except Exception:  # the end is recorded; what follows it (dependents) is also reconciled
            log.exception("job %s: handling its recorded end failed", pending.claimed.job_id)


@dataclass
class PendingFinish:
    """A finish sent ahead: the reply is read with the consumer connection's next step."""

    claimed: Claimed
    command: bytes
    finished: Finished
    then: TakeRequest | None = None  # it also takes the next jobs (job_next)
