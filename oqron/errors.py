"""The exception hierarchy of oqron.

    OqronError
    ├── ConfigError            invalid configuration value (names the field and what is allowed)
    ├── AdapterError           a storage / broker / lock backend failed or is unreachable
    │   └── AdapterUnavailable the backend cannot be reached at all
    ├── LeaseLost              a finish presented a stale lease token; nothing was changed
    ├── JobNotFound            no job record with that id
    ├── DependencyNotFound     a ``depends_on`` parent does not exist
    ├── QueuePaused            the queue is paused and the operation needs it running
    ├── RateLimited            a rate limiter refused the request
    ├── DefinitionError        a queue / worker definition is invalid or conflicts with another
    ├── JobFailed              ``Job.wait()`` on a job that ended failed or cancelled
    └── JobError               errors recorded on a job (the job's ``error["type"]``)
        ├── JobTimeout         soft timeout inside the handler, or the hard timeout
        ├── WorkerCrashed      the child running the job died (exit code or signal in the message)
        ├── JobDiscarded       the handler called ``ctx.discard()``
        ├── UnknownHandler     no handler for the job's queue on this node
        └── CorruptJob         the job record could not be decoded

Control flow of the runtime (warm/cold shutdown) uses ``BaseException`` subclasses that live in
the runtime package, so that a handler's ``except Exception`` cannot swallow them.
"""

from __future__ import annotations

from typing import Any


class OqronError(Exception):
    """Base class of every error oqron raises on purpose."""


class ConfigError(OqronError, ValueError):
    """A configuration value is invalid; the message names the field and the allowed values."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class AdapterError(OqronError):
    """A backend operation failed."""


class AdapterUnavailable(AdapterError):
    """The backend behind an adapter URL cannot be reached."""


class LeaseLost(OqronError):
    """The lease token presented with ack/nack/renew is not the current one.

    The job's lease expired and the job was claimed again (or finished) elsewhere; the
    operation changed nothing.
    """


class JobNotFound(OqronError, KeyError):
    def __str__(self) -> str:  # KeyError quotes its argument; keep the message readable
        return str(self.args[0]) if self.args else "job not found"


class DependencyNotFound(OqronError):
    """A parent listed in ``depends_on`` does not exist."""


class QueuePaused(OqronError):
    """The queue is paused."""


class RateLimited(OqronError):
    """A rate limiter refused the request; ``retry_after`` is in seconds."""

    def __init__(self, message: str, retry_after: float = 0.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class DefinitionError(OqronError, ValueError):
    """A queue or worker definition is invalid or conflicts with an existing one."""


class JobFailed(OqronError):
    """Raised by ``Job.wait()`` when the job ended ``failed`` or ``cancelled``."""

    def __init__(self, job_id: str, status: str, error: dict[str, Any] | None) -> None:
        error = error or {}
        kind = error.get("type", "Error")
        message = error.get("message", "")
        super().__init__(f"job {job_id} {status}: {kind}: {message}")
        self.job_id = job_id
        self.status = status
        self.error = error


class JobError(OqronError):
    """An error recorded on a job by oqron itself (not raised by user code)."""


class JobTimeout(JobError):
    """The job ran past its timeout."""


class WorkerCrashed(JobError):
    """The child process running the job died."""


class JobDiscarded(JobError):
    """The handler called ``ctx.discard()``: fail now, no retry."""


class UnknownHandler(JobError):
    """No handler is registered for the job's queue on this node."""


class CorruptJob(JobError):
    """The job record could not be decoded."""
