"""oqron: a prefork job framework for synchronous Python.

    from oqron import queue, Retries
    emails = queue("emails", retries=Retries(max=3))

    @emails.handler
    def send(ctx):
        return {"sent": ctx.data["to"]}

    emails.add({"to": "a@example.com"})
"""

from .adapters.base import Lease
from .config import Config, define_config, load_config
from .container import Container
from .context import JobContext
from .errors import (
    ConfigError,
    DependencyNotFound,
    JobFailed,
    JobTimeout,
    LeaseLost,
    OqronError,
    QueuePaused,
    RateLimited,
    WorkerCrashed,
)
from .job import Job, Retries
from .kit import OqronKit
from .modules.cron import Cron, cron
from .modules.queue import Queue, queue, worker
from .runtime.runner import Runner

__version__ = "0.1.0"

__all__ = [
    "Config",
    "ConfigError",
    "Container",
    "Cron",
    "DependencyNotFound",
    "Job",
    "JobContext",
    "JobFailed",
    "JobTimeout",
    "Lease",
    "LeaseLost",
    "OqronError",
    "OqronKit",
    "Queue",
    "QueuePaused",
    "RateLimited",
    "Retries",
    "Runner",
    "WorkerCrashed",
    "cron",
    "define_config",
    "load_config",
    "queue",
    "worker",
]
