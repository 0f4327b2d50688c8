"""``queue()`` and ``worker()``: queue definitions, and the producer API that adds and inspects jobs."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from .. import codec, dag, retention
from ..adapters.base import MAX_PRIORITY, STRATEGIES
from ..checks import is_int, is_seconds
from ..config import QUEUE_NAME_RE
from ..container import Container
from ..errors import DefinitionError, JobNotFound
from ..job import STATUSES, Job, Retries, check_job_id, new_job_id, normalize_backoff
from ..lifecycle import AddOptions, Lifecycle
from ..registry import registry

Handler = Callable[..., Any]
H = TypeVar("H", bound=Handler)

#: What ``Queue.add`` stores when given no option (most adds): what ``_options`` makes of nine
#: Nones, built once instead of validated on every add.
DEFAULT_OPTIONS = AddOptions()


class Queue:
    """A named queue: its options, its handler (if this process runs it) and the producer API."""

    def __init__(
        self,
        name: str,
        handler: Handler | None = None,
        *,
        strategy: str = "fifo",
        concurrency: int | None = None,
        timeout: float | None = None,
        soft_timeout: float | None = None,
        retries: Retries | None = None,
        rate_limit: Any = None,
        remove_on_complete: Any = False,
        remove_on_fail: Any = False,
        tags: Sequence[str] = (),
    ) -> None:
        if not isinstance(name, str) or not QUEUE_NAME_RE.match(name):
            raise DefinitionError(
                f"queue name: expected 1-128 letters, digits, '_', '.', '-' starting with a letter or "
                f"digit, got {name!r}"
            )
        if strategy not in STRATEGIES:
            raise DefinitionError(f"strategy: expected one of {', '.join(STRATEGIES)}, got {strategy!r}")
        if concurrency is not None and not is_int(concurrency, 1):
            raise DefinitionError(f"concurrency: expected an integer >= 1, got {concurrency!r}")
        for label, value in (("timeout", timeout), ("soft_timeout", soft_timeout)):
            if value is not None and not is_seconds(value, positive=True):
                raise DefinitionError(f"{label}: expected seconds > 0, got {value!r}")
        if retries is not None and not isinstance(retries, Retries):
            raise DefinitionError(f"retries: expected oqron.Retries(...), got {retries!r}")
        try:
            retention.check("remove_on_complete", remove_on_complete)
            retention.check("remove_on_fail", remove_on_fail)
        except ValueError as exc:
            raise DefinitionError(str(exc)) from None
        self.name = name
        self.function = handler
        self.strategy = strategy
        self.concurrency = concurrency
        self.timeout = float(timeout) if timeout is not None else None
        self.soft_timeout = float(soft_timeout) if soft_timeout is not None else None
        self.retries = retries or Retries()
        self.rate_limit = rate_limit
        self.remove_on_complete = remove_on_complete
        self.remove_on_fail = remove_on_fail
        self.tags = tuple(tags)

    def __repr__(self) -> str:
        return f"<Queue {self.name} {self.strategy}>"

    @property
    def publish_strategy(self) -> str | None:
        """The strategy sent with publishes (None: keep what the broker remembers)."""
        return self.strategy

    def options(self) -> dict[str, Any]:
        """The definition's options (what two definitions of one queue must agree on)."""
        return {
            "strategy": self.strategy,
            "concurrency": self.concurrency,
            "timeout": self.timeout,
            "soft_timeout": self.soft_timeout,
            "retries": self.retries,
            "remove_on_complete": self.remove_on_complete,
            "remove_on_fail": self.remove_on_fail,
            "tags": self.tags,
        }

    def handler(self, function: H) -> H:
        """Decorator: register ``function(ctx)`` as the code that runs this queue's jobs."""
        if not callable(function):
            raise DefinitionError(f"handler of queue {self.name!r} must be callable, got {function!r}")
        self.function = function
        return function

    @property
    def lifecycle(self) -> Lifecycle:
        return Container.get().lifecycle

    # --- producing -------------------------------------------------------------------------

    def add(
        self,
        data: Any = None,
        *,
        job_id: str | None = None,
        priority: int | None = None,
        delay: float | None = None,
        attempts: int | None = None,
        backoff: Any = None,
        depends_on: Iterable[str] | None = None,
        on_parent_failure: str | None = None,
        correlation_id: str | None = None,
        remove_on_complete: Any = None,
        remove_on_fail: Any = None,
    ) -> Job:
        """Store and publish one job; with ``job_id`` of an existing job, return that job."""
        codec.check_json(data, "data")
        generated = job_id is None
        job_id = new_job_id() if generated else check_job_id(job_id)
        given = (priority, delay, attempts, backoff, depends_on, on_parent_failure, correlation_id,
                 remove_on_complete, remove_on_fail)
        # identity, not ==: a value's own __eq__ (an array's, say) must not run here
        options = DEFAULT_OPTIONS if all(value is None for value in given) else self._options(*given)
        return self.lifecycle.add(self, [(data, job_id)], options, new_ids=generated)[0]

    def add_bulk(self, items: Sequence[Any], **options: Any) -> list[Job]:
        """Add many jobs (one per item of data, ids generated) in a constant number of round
        trips; ``options`` apply to every job. Nothing is stored if any item is not JSON."""
        if not isinstance(items, (list, tuple)):
            raise TypeError(f"items: expected a list of job data, got {type(items).__name__}")
        unknown = set(options) - {
            "priority", "delay", "attempts", "backoff", "depends_on", "on_parent_failure",
            "correlation_id", "remove_on_complete", "remove_on_fail",
        }
        if unknown:
            raise TypeError(f"add_bulk() got an unexpected option {sorted(unknown)[0]!r}")
        for index, data in enumerate(items):
            codec.check_json(data, f"items[{index}]")
        parsed = self._options(
            options.get("priority"), options.get("delay"), options.get("attempts"),
            options.get("backoff"), options.get("depends_on"), options.get("on_parent_failure"),
            options.get("correlation_id"), options.get("remove_on_complete"),
            options.get("remove_on_fail"),
        )
        if not items:
            return []
        return self.lifecycle.add(self, [(data, new_job_id()) for data in items], parsed, new_ids=True)

    def _options(
        self,
        priority: Any,
        delay: Any,
        attempts: Any,
        backoff: Any,
        depends_on: Any,
        on_parent_failure: Any,
        correlation_id: Any,
        remove_on_complete: Any,
        remove_on_fail: Any,
    ) -> AddOptions:
        priority = 0 if priority is None else priority
        if not is_int(priority, 0) or priority > MAX_PRIORITY:
            raise ValueError(
                f"priority: expected an integer 0..{MAX_PRIORITY} (lower runs first), got {priority!r}"
            )
        delay = 0.0 if delay is None else delay
        if not is_seconds(delay):
            raise ValueError(f"delay: expected seconds >= 0, got {delay!r}")
        if attempts is not None and not is_int(attempts, 1):
            raise ValueError(f"attempts: expected an integer >= 1 (total attempts), got {attempts!r}")
        parents: tuple[str, ...] = ()
        if depends_on is not None:
            if isinstance(depends_on, str) or not isinstance(depends_on, Iterable):
                raise ValueError(f"depends_on: expected a list of job ids, got {depends_on!r}")
            parents = tuple(check_job_id(p.id if isinstance(p, Job) else p) for p in depends_on)
        policy = on_parent_failure or "cascade-fail"
        if policy not in dag.POLICIES:
            raise ValueError(f"on_parent_failure: expected one of {', '.join(dag.POLICIES)}, got {policy!r}")
        if correlation_id is not None and not isinstance(correlation_id, str):
            raise ValueError(f"correlation_id: expected a string, got {correlation_id!r}")
        return AddOptions(
            priority=priority,
            delay=float(delay),
            attempts=attempts,
            backoff=normalize_backoff(backoff),
            depends_on=parents,
            on_parent_failure=policy,
            correlation_id=correlation_id,
            remove_on_complete=retention.check("remove_on_complete", remove_on_complete),
            remove_on_fail=retention.check("remove_on_fail", remove_on_fail),
        )

    # --- inspecting and managing -----------------------------------------------------------

    def get_job(self, job_id: str) -> Job | None:
        record = self.lifecycle.storage.get_job(job_id)
        if record is None or record["queue"] != self.name:
            return None
        return Job(record, self.lifecycle)

    def get_jobs(self, status: str | None = None, limit: int = 100, offset: int = 0) -> list[Job]:
        _check_status(status)
        lifecycle = self.lifecycle
        records = lifecycle.storage.list_jobs(self.name, status, limit=limit, offset=offset)
        return [Job(record, lifecycle) for record in records]

    def count(self, status: str | None = None) -> int:
        _check_status(status)
        return self.lifecycle.storage.count_jobs(self.name, status)

    def counts(self) -> dict[str, int]:
        storage = self.lifecycle.storage
        return {status: storage.count_jobs(self.name, status) for status in STATUSES}

    def pause(self) -> None:
        self.lifecycle.broker.pause(self.name)

    def resume(self) -> None:
        self.lifecycle.broker.resume(self.name)

    def is_paused(self) -> bool:
        return self.lifecycle.broker.is_paused(self.name)

    def drain(self) -> int:
        """Remove every waiting and delayed job (records included); running jobs go on."""
        lifecycle = self.lifecycle
        ids = lifecycle.broker.drain(self.name)
        return lifecycle.storage.delete_jobs(ids)

    def obliterate(self) -> int:
        """Remove the queue and every job record of it, whatever their status."""
        lifecycle = self.lifecycle
        lifecycle.broker.obliterate(self.name)
        deleted = 0
        while True:
            records = lifecycle.storage.list_jobs(self.name, None, limit=1000)
            if not records:
                return deleted
            deleted += lifecycle.storage.delete_jobs([r["id"] for r in records])

    def job(self, job_id: str) -> Job:
        """Like ``get_job`` but raises ``JobNotFound``."""
        job = self.get_job(job_id)
        if job is None:
            raise JobNotFound(f"no job {job_id!r} in queue {self.name!r}")
        return job


class UndeclaredQueue(Queue):
    """A queue known only by name (admin tools): adds jobs without imposing an ordering
    strategy on the broker, which keeps the one its definition published with."""

    @property
    def publish_strategy(self) -> str | None:
        return None


def _check_status(status: str | None) -> None:
    if status is not None and status not in STATUSES:
        raise ValueError(f"status: expected one of {', '.join(STATUSES)}, got {status!r}")


def queue(name: str, handler: Handler | None = None, **options: Any) -> Queue:
    """Define a queue (and register it). Producers call ``.add()``; ``.handler`` sets its code."""
    return registry.add_queue(Queue(name, handler, **options))


def worker(topic: str, **options: Any) -> Callable[[H], H]:
    """Decorator for a consumer-only definition: run ``function(ctx)`` for jobs of ``topic``."""

    def register(function: H) -> H:
        registry.add_queue(Queue(topic, function, **options))
        return function

    return register
