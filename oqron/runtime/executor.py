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
from dataclasses import dataclass
from types import FrameType
from typing import Any, TypeVar

from .. import codec
from ..context import JobContext
from ..errors import AdapterError, JobDiscarded, JobTimeout, LeaseLost, UnknownHandler
from ..lifecycle import Claimed, Lifecycle, TakeRequest
from ..modules.queue import Queue
from ..registry import Registry
from .control import HardTimeout, StopChild
from .outage import Outage

log = logging.getLogger("oqron.executor")
SKIPPED = "skipped"
T = TypeVar("T")


@dataclass
class Outcome:
    """How an attempt ended (the job's status) and the next job, when one was taken with it."""

    status: str
    next: Claimed | None = None


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

    def execute(self, claimed: Claimed, then: TakeRequest | None = None) -> Outcome:
        """Run a claimed (started) attempt and record how it ended. With ``then``, the next job
        is taken in the same backend step as the recording and returned in the outcome.

        The status is the job's afterwards, or ``skipped`` when its end could not be recorded
        because the attempt no longer owns the job."""
        self.last_error = None
        queue = self.registry.queues.get(claimed.lease.queue)
        if queue is None or queue.function is None:
            message = f"no handler for queue {claimed.lease.queue!r} on worker {self.worker_id}"
            error = {"type": UnknownHandler.__name__, "message": message}
            return self._fail(claimed, error, None, queue, retryable=False, then=then)
        context = JobContext(claimed, self.lifecycle)
        try:
            with soft_timeout(queue.soft_timeout):
                result = queue.function(context)
        except BaseException as exc:
            self.last_error = exc
            control = isinstance(exc, self.propagate)
            outcome = self._record_exception(claimed, queue, context, exc, None if control else then)
            if control:
                raise
            return outcome
        if context.discarded:
            error = {"type": JobDiscarded.__name__, "message": "discarded by handler"}
            return self._fail(claimed, error, None, queue, retryable=False, then=then)
        try:
            codec.check_json(result, "return value")
        except TypeError as exc:  # a handler bug: the same code would fail the same way again
            error = {"type": "TypeError", "message": str(exc)}
            return self._fail(claimed, error, None, queue, retryable=False, then=then)
        try:
            taken = self._record(lambda: self.lifecycle.complete(claimed, result, queue, then))
        except LeaseLost as exc:
            log.warning("job %s finished but its result was refused: %s", claimed.job_id, exc)
            return Outcome(SKIPPED)
        return Outcome("completed", taken)

    def _record_exception(
        self,
        claimed: Claimed,
        queue: Queue,
        context: JobContext,
        exc: BaseException,
        then: TakeRequest | None,
    ) -> Outcome:
        kind, message = type(exc).__name__, str(exc) or type(exc).__name__
        if isinstance(exc, HardTimeout):
            kind, message = JobTimeout.__name__, f"hard timeout: ran longer than {queue.timeout} s"
        retryable = not (context.discarded or isinstance(exc, JobDiscarded))
        stack = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        return self._fail(claimed, {"type": kind, "message": message}, stack, queue, retryable, then)

    def _fail(
        self,
        claimed: Claimed,
        error: dict[str, Any],
        stacktrace: str | None,
        queue: Queue | None,
        retryable: bool,
        then: TakeRequest | None,
    ) -> Outcome:
        try:
            status, taken = self._record(
                lambda: self.lifecycle.fail_attempt(claimed, error, stacktrace, queue, retryable, then)
            )
        except LeaseLost as exc:
            log.warning("job %s failed but the failure was refused: %s", claimed.job_id, exc)
            return Outcome(SKIPPED)
        return Outcome(status, taken)

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


@contextmanager
def soft_timeout(seconds: float | None) -> Iterator[None]:
    """Raise ``JobTimeout`` inside the handler after ``seconds`` (SIGALRM; main thread only)."""
    if not seconds or threading.current_thread() is not threading.main_thread():
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
