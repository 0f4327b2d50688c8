"""``JobContext``: what a handler receives — the job's data and attempt, progress, logs, and the
way to fail for good (``discard``) or to start more jobs (``spawn``)."""

from __future__ import annotations

import functools
import logging
import time
from typing import TYPE_CHECKING, Any

from .errors import JobDiscarded
from .job import Job

if TYPE_CHECKING:
    from .lifecycle import Claimed, Lifecycle

_log = logging.getLogger("oqron.job")


class JobLogger:
    """Logs through stdlib logging and keeps the line in the job's record (capped)."""

    def __init__(self, context: JobContext) -> None:
        self._context = context

    def _write(self, level: int, message: str, args: tuple[Any, ...]) -> None:
        text = message % args if args else message
        ctx = self._context
        _log.log(level, "[%s:%s] %s", ctx.queue, ctx.id, text)
        entry = {"ts": time.time(), "level": logging.getLevelName(level).lower(), "msg": text}
        ctx._lifecycle.append_log(ctx._claimed, entry)

    def debug(self, message: str, *args: Any) -> None:
        self._write(logging.DEBUG, message, args)

    def info(self, message: str, *args: Any) -> None:
        self._write(logging.INFO, message, args)

    def warning(self, message: str, *args: Any) -> None:
        self._write(logging.WARNING, message, args)

    def error(self, message: str, *args: Any) -> None:
        self._write(logging.ERROR, message, args)

    def __call__(self, level: str, message: str, *args: Any) -> None:
        self._write(logging.getLevelName(level.upper()), message, args)


class JobContext:
    """Handed to every handler as ``ctx``."""

    def __init__(self, claimed: Claimed, lifecycle: Lifecycle) -> None:
        self._claimed = claimed
        self._lifecycle = lifecycle
        self._record = claimed.record
        self.discarded = False
        self.started = time.monotonic()

    @functools.cached_property
    def log(self) -> JobLogger:
        """Made on first use: most handlers never log, and a job's start is a hot path."""
        return JobLogger(self)

    @property
    def id(self) -> str:
        return str(self._record["id"])

    @property
    def data(self) -> Any:
        return self._record.get("data")

    @property
    def queue(self) -> str:
        return str(self._record["queue"])

    @property
    def attempt(self) -> int:
        return int(self._record.get("attempts_made") or 1)

    @property
    def max_attempts(self) -> int:
        return int(self._record.get("max_attempts") or 1)

    @property
    def project(self) -> str:
        return str(self._record.get("project"))

    @property
    def environment(self) -> str:
        return str(self._record.get("environment"))

    @property
    def correlation_id(self) -> str | None:
        return self._record.get("correlation_id")

    @property
    def duration(self) -> float:
        """Seconds since the handler started."""
        return time.monotonic() - self.started

    def progress(self, percent: float, label: str | None = None) -> None:
        """Record progress (0-100) and an optional label on the job."""
        if isinstance(percent, bool) or not isinstance(percent, (int, float)) or not 0 <= percent <= 100:
            raise ValueError(f"progress: expected a number 0..100, got {percent!r}")
        self._lifecycle.update_progress(self._claimed, percent, label)

    def discard(self, reason: str = "discarded by handler") -> None:
        """Fail the job now, with no retry."""
        self.discarded = True
        raise JobDiscarded(reason)

    def parent_results(self) -> dict[str, Any]:
        """Return values of this job's ``depends_on`` parents, by parent id."""
        parent_ids = self._record.get("parent_ids") or []
        parents = self._lifecycle.storage.get_jobs(parent_ids)
        return {pid: (p or {}).get("return_value") for pid, p in zip(parent_ids, parents, strict=True)}

    def spawn(self, queue: Any, data: Any = None, **options: Any) -> Job:
        """Add a job to another queue (a name or a ``Queue``), marked as started by this job."""
        from .modules.queue import Queue
        from .registry import registry

        target = queue if isinstance(queue, Queue) else registry.queues.get(queue) or Queue(queue)
        options.setdefault("correlation_id", self.correlation_id or self.id)
        return target.add(data, **options)
