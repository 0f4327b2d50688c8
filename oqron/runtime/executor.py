"""Run one claimed job: start the attempt, call the handler, record the outcome.

The outcome goes through ``Lifecycle``: success → completed + ack; failure with attempts left →
delayed (backoff) + nack; otherwise failed + ack. Anything the handler raises, ``BaseException``
included, ends as a recorded failure; only the runtime's own control exceptions (and those the
caller names in ``propagate``) continue upwards after being recorded.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import FrameType
from typing import Any, TypeVar

from .. import codec
from ..context import JobContext
from ..errors import AdapterError, JobDiscarded, JobTimeout, LeaseLost, UnknownHandler
from ..lifecycle import Claimed, Ending, Lifecycle, TakeRequest
from ..modules.queue import Queue
from ..registry import Registry
from .control import HardTimeout, StopChild
from .outage import Outage

log = logging.getLogger("oqron.executor")
SKIPPED = "skipped"
T = TypeVar("T")


@dataclass
class Outcome:
    """How an attempt ended (the job's status) and the next jobs, when taken with it."""

    status: str
    next: list[Claimed] = field(default_factory=list)


@dataclass
class Attempt:
    """A handler's run, not yet recorded: its ending, and the runtime's control exception
    (hard timeout, stop) to raise once the ending is recorded."""

    ending: Ending
    control: BaseException | None = None


class Executor:
    def __init__(
        self,
        lifecycle: Lifecycle,
        registry: Registry,
        worker_id: str,
        propagate: tuple[type[BaseException], ...] = (),
        record_retry_window: float = 0.0,
    ) -> None:
        """``record_retry_window``: how long to keep retrying to record a finished job's outcome
        while the backend is unavailable (the result exists only in this process)."""
        self.lifecycle = lifecycle
        self.registry = registry
        self.worker_id = worker_id
        self.record_retry_window = record_retry_window
        self.propagate: tuple[type[BaseException], ...] = (HardTimeout, StopChild, *propagate)
        self.outage = Outage("recording job outcomes", log)
        #: What the handler of the last executed job raised (None if it returned).
        self.last_error: BaseException | None = None

    def execute(self, claimed: Claimed, then: TakeRequest | None = None, count: int = 1) -> Outcome:
        """Run a claimed (started) attempt and record how it ended. With ``then``, up to
        ``count`` next jobs are taken in the same backend step and returned in the outcome.

        The status is the job's afterwards, or ``skipped`` when its end could not be recorded
        because the attempt no longer owns the job."""
        attempt = self.run(claimed)
        outcome = self.record(attempt, None if attempt.control else then, count)
        if attempt.control is not None:
            raise attempt.control
        return outcome

    def run(self, claimed: Claimed) -> Attempt:
        """Call the handler and say how the attempt ended; nothing is written yet. Anything the
        handler raises, ``BaseException`` included, becomes a failure."""
        self.last_error = None
        queue = self.registry.queues.get(claimed.lease.queue)
        if queue is None or queue.function is None:
            message = f"no handler for queue {claimed.lease.queue!r} on worker {self.worker_id}"
            error = {"type": UnknownHandler.__name__, "message": message}
            return Attempt(self._unretryable(claimed, error, queue))
        context = JobContext(claimed, self.lifecycle)
        started = time.time()
        try:
            if queue.soft_timeout:
                with soft_timeout(queue.soft_timeout):
                    result = queue.function(context)
            else:  # most queues: no timer to arm, and no context manager on a cold path
                result = queue.function(context)
        except BaseException as exc:  # noqa: BLE001 - recorded; control ones are raised after
            self.last_error = exc
            ending = self._exception_ending(claimed, queue, context, exc)
            control = exc if isinstance(exc, self.propagate) else None
            return Attempt(_stamped(ending, started), control)
        if context.discarded:
            error = {"type": JobDiscarded.__name__, "message": "discarded by handler"}
            return Attempt(_stamped(self._unretryable(claimed, error, queue), started))
        try:
            codec.check_json(result, "return value")
        except TypeError as exc:  # a handler bug: the same code would fail the same way again
            error = {"type": "TypeError", "message": str(exc)}
            return Attempt(_stamped(self._unretryable(claimed, error, queue), started))
        return Attempt(_stamped(self.lifecycle.completion(claimed, result, queue), started))

    def record(self, attempt: Attempt, then: TakeRequest | None = None, count: int = 1) -> Outcome:
        """Write an attempt's end (retrying while the backend is away), taking up to ``count``
        next jobs with it when ``then`` asks."""
        ending = attempt.ending
        try:
            taken = self._record(lambda: self.lifecycle.record(ending, then, count))
        except LeaseLost as exc:
            log.warning("job %s ended (%s) but the end was refused: %s",
                        ending.claimed.job_id, ending.status, exc)
            return Outcome(SKIPPED)
        return Outcome(ending.status, taken)

    def record_later(self, attempt: Attempt, then: TakeRequest | None = None, count: int = 1) -> Outcome:
        """Write an attempt's end without waiting for the reply where the backend pipelines;
        a refusal is logged when the reply is read. With ``then``, up to ``count`` next jobs are
        taken in the same step; ``taken_ahead`` hands them over."""
        self._record(lambda: self.lifecycle.record_later(attempt.ending, _refused, then, count))
        return Outcome(attempt.ending.status)

    def taken_ahead(self) -> list[Claimed]:
        """The jobs taken by ends recorded ahead (retried like them while the backend is away:
        the reply also says whether those ends were recorded)."""
        return self._record(self.lifecycle.path.taken_ahead)

    def flush(self) -> None:
        """Wait for the ends sent ahead to be recorded."""
        self._record(self.lifecycle.path.flush)

    def _unretryable(self, claimed: Claimed, error: dict[str, Any], queue: Queue | None) -> Ending:
        return self.lifecycle.failure(claimed, error, None, queue, retryable=False)

    def _exception_ending(
        self, claimed: Claimed, queue: Queue, context: JobContext, exc: BaseException
    ) -> Ending:
        kind, message = type(exc).__name__, str(exc) or type(exc).__name__
        if isinstance(exc, HardTimeout):
            kind, message = JobTimeout.__name__, f"hard timeout: ran longer than {queue.timeout} s"
        retryable = not (context.discarded or isinstance(exc, JobDiscarded))
        stack = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        return self.lifecycle.failure(claimed, {"type": kind, "message": message}, stack, queue, retryable)

    def _record(self, write: Callable[[], T]) -> T:
        """Write an attempt's end, retrying with backoff while the backend is unavailable (the
        outcome exists only in this process) for up to ``record_retry_window`` seconds."""
        deadline = time.monotonic() + self.record_retry_window
        while True:
            try:
                result = write()
            except AdapterError as exc:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(min(self.outage.failed(exc), max(0.0, deadline - time.monotonic())))
                continue
            self.outage.recovered()
            return result


def _stamped(ending: Ending, started: float) -> Ending:
    """A job taken in a batch started its attempt before its handler ran: record when it ran."""
    if ending.claimed.prefetched:
        ending.changes["started_at"] = started
    return ending


def _refused(ending: Ending) -> None:
    log.warning("job %s ended (%s) but the end was refused: the attempt no longer owned the job",
                ending.claimed.job_id, ending.status)


@contextmanager
def soft_timeout(seconds: float) -> Iterator[None]:
    """Raise ``JobTimeout`` inside the handler after ``seconds`` (SIGALRM; main thread only).
    ``Executor.run`` enters it only for a queue that has a soft timeout."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum: int, frame: FrameType | None) -> None:
        raise JobTimeout(f"soft timeout: ran longer than {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
