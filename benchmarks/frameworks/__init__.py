"""One driver per framework, each with the same small interface (see ``Driver``).

A driver module imports its framework, so it is only imported inside that framework's venv.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NAMES = ("oqron", "celery", "rq", "dramatiq", "huey")


class Driver:
    """Producer side of one framework, plus the command line of its worker."""

    name = ""
    #: How enqueue_bulk adds many jobs (shown in the report).
    bulk_note = ""
    #: A cap on the drained job count for a framework too slow to drain 20,000 in the time budget.
    max_drain_jobs: int | None = None
    #: The same for bulk enqueue.
    max_bulk_jobs: int | None = None

    def __init__(self, redis_url: str, **options: Any) -> None:
        self.redis_url = redis_url
        self.options = options

    def version(self) -> str:
        raise NotImplementedError

    def enqueue_one(self, data: dict[str, Any]) -> None:
        raise NotImplementedError

    def enqueue_bulk(self, items: list[dict[str, Any]]) -> None:
        raise NotImplementedError

    def worker_argv(self, processes: int) -> list[str]:
        raise NotImplementedError

    def worker_env(self) -> dict[str, str]:
        """Environment of the worker (and of everything it forks)."""
        path = os.environ.get("PYTHONPATH")
        return {**os.environ, "PYTHONPATH": ROOT + (os.pathsep + path if path else ""),
                "BENCH_REDIS": self.redis_url, "PYTHONUNBUFFERED": "1"}

    def close(self) -> None:
        pass


def venv_bin(name: str) -> str:
    """A console script of the venv this interpreter belongs to."""
    return os.path.join(os.path.dirname(sys.executable), name)


def load(name: str, redis_url: str, **options: Any) -> Driver:
    module = importlib.import_module(f"benchmarks.frameworks.{name}_driver")
    driver: Driver = module.DRIVER(redis_url, **options)
    return driver
