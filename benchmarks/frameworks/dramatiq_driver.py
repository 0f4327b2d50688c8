from __future__ import annotations

import sys
from typing import Any

import dramatiq

from . import Driver


class DramatiqDriver(Driver):
    name = "dramatiq"
    bulk_note = "no bulk API: send() in a loop"
    max_drain_jobs = 5000  # about 500 jobs/s here: 20,000 would cost 40 s per round

    def __init__(self, redis_url: str, **options: Any) -> None:
        super().__init__(redis_url, **options)
        from benchmarks.tasks import dramatiq_tasks

        self.actor = dramatiq_tasks.run

    def version(self) -> str:
        return dramatiq.__version__

    def enqueue_one(self, data: dict[str, Any]) -> None:
        self.actor.send(data)

    def enqueue_bulk(self, items: list[dict[str, Any]]) -> None:
        for data in items:
            self.actor.send(data)

    def worker_argv(self, processes: int) -> list[str]:
        return [sys.executable, "-m", "dramatiq", "benchmarks.tasks.dramatiq_tasks",
                "--processes", str(processes), "--threads", "1"]


DRIVER = DramatiqDriver
