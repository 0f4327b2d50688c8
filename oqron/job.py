"""The job: statuses, the record stored for every job, retry policy and backoff, and ``Job``,
the handle a producer holds."""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .checks import is_int, is_seconds
from .errors import ConfigError, JobFailed, JobNotFound

if TYPE_CHECKING:
    from .lifecycle import Lifecycle

WAITING = "waiting"
DELAYED = "delayed"
WAITING_CHILDREN = "waiting-children"
ACTIVE = "active"
COMPLETED = "completed"
FAILED = "failed"
CANCELLED = "cancelled"
PAUSED = "paused"
STALLED = "stalled"
STATUSES = (WAITING, DELAYED, WAITING_CHILDREN, ACTIVE, COMPLETED, FAILED, CANCELLED, PAUSED, STALLED)
FINAL = frozenset({COMPLETED, FAILED, CANCELLED})
#: A claimed job may start only from these statuses (active: its previous lease expired).
STARTABLE = (WAITING, DELAYED, PAUSED, STALLED, ACTIVE)

TRIGGERS = ("api", "cron", "schedule", "retry", "flow", "webhook", "manual")
BACKOFF_STRATEGIES = ("fixed", "exponential")
MAX_JOB_ID = 256

BackoffFn = Callable[[int], float]


@dataclass(frozen=True)
class Retries:
    """Retry policy of a queue: ``max`` retries after the first attempt (``attempts = max + 1``).

    ``strategy`` is ``"fixed"`` (always ``base_delay``), ``"exponential"``
    (``base_delay * 2**(n-1)`` with ±20 % jitter) or a callable ``f(attempt) -> seconds``;
    every delay is capped by ``max_delay``.
    """

    max: int = 3
    strategy: str | BackoffFn = "exponential"
    base_delay: float = 2.0
    max_delay: float = 60.0

    def __post_init__(self) -> None:
        if not is_int(self.max, 0):
            raise ConfigError("retries.max", f"expected an integer >= 0, got {self.max!r}")
        if not callable(self.strategy) and self.strategy not in BACKOFF_STRATEGIES:
            raise ConfigError(
                "retries.strategy",
                f"expected 'fixed', 'exponential' or a callable, got {self.strategy!r}",
            )
        for name in ("base_delay", "max_delay"):
            value = getattr(self, name)
            if not is_seconds(value):
                raise ConfigError(f"retries.{name}", f"expected seconds >= 0, got {value!r}")

    def delay(self, attempt: int, backoff: Mapping[str, Any] | None = None) -> float:
        """Seconds to wait before the attempt after ``attempt`` (1-based) failed.

        ``backoff`` is a job's own ``{"type": ..., "delay": ...}`` and overrides the strategy.
        """
        strategy: str | BackoffFn = self.strategy
        base = self.base_delay
        if backoff:
            strategy, base = str(backoff["type"]), float(backoff["delay"])
        if callable(strategy):
            seconds = float(strategy(attempt))
        elif strategy == "fixed":
            seconds = base
        else:
            seconds = base * 2 ** (attempt - 1) * (0.8 + random.random() * 0.4)
        return max(0.0, min(seconds, self.max_delay))


def normalize_backoff(backoff: Any) -> dict[str, Any] | None:
    """A job's ``backoff`` option: seconds (fixed) or ``{"type": ..., "delay": seconds}``."""
    if backoff is None:
        return None
    if is_seconds(backoff):
        return {"type": "fixed", "delay": float(backoff)}
    if isinstance(backoff, Mapping):
        kind, delay = backoff.get("type"), backoff.get("delay")
        if kind in BACKOFF_STRATEGIES and is_seconds(delay) and set(backoff) <= {"type", "delay"}:
            return {"type": kind, "delay": float(delay)}  # type: ignore[arg-type]
    raise ValueError(
        f"backoff: expected seconds or {{'type': 'fixed'|'exponential', 'delay': seconds}}, got {backoff!r}"
    )


def check_job_id(job_id: Any) -> str:
    if (
        not isinstance(job_id, str)
        or not job_id
        or len(job_id) > MAX_JOB_ID
        or any(ord(ch) < 32 for ch in job_id)
    ):
        raise ValueError(
            f"job_id: expected a string of 1-{MAX_JOB_ID} printable characters, got {job_id!r}"
        )
    return job_id


def new_job_id() -> str:
    """A random version-4 UUID as 32 hex digits, as ``uuid.uuid4().hex`` gives, at a third of
    its cost (every add without a job id makes one)."""
    raw = bytearray(os.urandom(16))
    raw[6] = raw[6] & 0x0F | 0x40  # version 4
    raw[8] = raw[8] & 0x3F | 0x80  # RFC 4122 variant
    return raw.hex()


#: Fields a record may omit when stored; reading fills them back with these values.
OPTIONAL_FIELDS: dict[str, Any] = {
    "progress_label": None, "return_value": None, "error": None, "stacktrace": None,
    "parent_ids": [], "children_ids": [], "worker_id": None, "lease_token": None,
    "started_at": None, "finished_at": None, "run_at": None, "correlation_id": None, "logs": [],
    "priority": 0, "attempts_made": 0, "progress": 0, "stalled_count": 0, "triggered_by": "api",
}


def new_record(
    *,
    job_id: str,
    queue: str,
    data: Any,
    status: str,
    options: dict[str, Any],
    max_attempts: int,
    priority: int,
    project: str,
    environment: str,
    triggered_by: str = "api",
    correlation_id: str | None = None,
    parent_ids: list[str] | None = None,
    run_at: float | None = None,
    now: float | None = None,
) -> dict[str, Any]:
    """The record stored for a new job. Every field is JSON."""
    now = time.time() if now is None else now
    return {
        "id": job_id,
        "queue": queue,
        "status": status,
        "data": data,
        "options": options,
        "priority": priority,
        "attempts_made": 0,
        "max_attempts": max_attempts,
        "progress": 0,
        "progress_label": None,
        "return_value": None,
        "error": None,
        "stacktrace": None,
        "parent_ids": parent_ids or [],
        "children_ids": [],
        "stalled_count": 0,
        "worker_id": None,
        "lease_token": None,
        "created_at": now,
        "queued_at": now,
        "started_at": None,
        "finished_at": None,
        "run_at": run_at,
        "project": project,
        "environment": environment,
        "triggered_by": triggered_by,
        "correlation_id": correlation_id,
        "timeline": [{"ts": now, "from": None, "to": status, "reason": "added"}],
        "logs": [],
    }


def new_records(items: Sequence[tuple[Any, str]], **shared: Any) -> list[dict[str, Any]]:
    """``new_record`` for each (data, job id) of an add, whose records share every other
    value: the record is built once and copied, each copy with lists of its own (an add of
    20,000 jobs spent a fifth of its client time building records one by one)."""
    if len(items) == 1:  # a single add: no template to copy
        return [new_record(job_id=items[0][1], data=items[0][0], **shared)]
    template = new_record(job_id="", data=None, **shared)
    parents, entry = template["parent_ids"], template["timeline"][0]
    records = []
    for data, job_id in items:
        record = template.copy()
        record["id"] = job_id
        record["data"] = data
        record["parent_ids"] = list(parents)
        record["children_ids"] = []
        record["timeline"] = [dict(entry)]
        record["logs"] = []
        records.append(record)
    return records


def transition(frm: str | None, to: str, reason: str, now: float | None = None) -> dict[str, Any]:
    """A timeline entry."""
    return {"ts": time.time() if now is None else now, "from": frm, "to": to, "reason": reason}


def error_info(exc: BaseException, *, kind: str | None = None) -> dict[str, Any]:
    return {"type": kind or type(exc).__name__, "message": str(exc)}


class Job:
    """A producer's handle on a job: the last record read plus methods that act on the job."""

    def __init__(self, record: dict[str, Any], lifecycle: Lifecycle) -> None:
        self._record = record
        self._lifecycle = lifecycle

    def __repr__(self) -> str:
        return f"<Job {self.queue}:{self.id} {self.status}>"

    def __getattr__(self, name: str) -> Any:
        # Fields beyond the typed properties (timeline, logs, stalled_count, ...) read through.
        record = self.__dict__.get("_record", {})
        if name in record:
            return record[name]
        raise AttributeError(name)

    @property
    def record(self) -> dict[str, Any]:
        return self._record

    @property
    def id(self) -> str:
        return str(self._record["id"])

    @property
    def queue(self) -> str:
        return str(self._record["queue"])

    @property
    def status(self) -> str:
        return str(self._record["status"])

    @property
    def data(self) -> Any:
        return self._record.get("data")

    @property
    def return_value(self) -> Any:
        return self._record.get("return_value")

    @property
    def error(self) -> dict[str, Any] | None:
        return self._record.get("error")

    @property
    def attempts_made(self) -> int:
        return int(self._record.get("attempts_made") or 0)

    @property
    def progress(self) -> float:
        return self._record.get("progress") or 0

    @property
    def created_at(self) -> float | None:
        return self._record.get("created_at")

    @property
    def started_at(self) -> float | None:
        return self._record.get("started_at")

    @property
    def finished_at(self) -> float | None:
        return self._record.get("finished_at")

    def refresh(self) -> Job:
        """Read the record again; raises ``JobNotFound`` if the job was removed."""
        record = self._lifecycle.storage.get_job(self.id)
        if record is None:
            raise JobNotFound(f"job {self.id} no longer exists")
        self._record = record
        return self

    def wait(self, timeout: float | None = None, poll: float = 0.5) -> Any:
        """Block until the job is final; return its return value or raise ``JobFailed``.

        Raises ``TimeoutError`` after ``timeout`` seconds. Polls storage with a backoff that
        starts at 5 ms and grows to ``poll`` seconds.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        interval = 0.005
        while True:
            self.refresh()
            if self.status == COMPLETED:
                return self.return_value
            if self.status in FINAL:
                raise JobFailed(self.id, self.status, self.error)
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"job {self.id} still {self.status} after {timeout} s")
            pause = interval if deadline is None else min(interval, max(0.0, deadline - time.monotonic()))
            time.sleep(pause)
            interval = min(poll, interval * 2)

    def cancel(self, reason: str = "cancelled") -> bool:
        """Cancel a job that has not finished. A running handler is not interrupted, but its
        result is refused. Returns False if the job was already final."""
        done = self._lifecycle.cancel(self.id, reason)
        self.refresh()
        return done

    def retry(self) -> bool:
        """Run a failed or cancelled job again (attempts start over). Returns False otherwise."""
        done = self._lifecycle.retry(self.id)
        self.refresh()
        return done
