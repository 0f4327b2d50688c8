from __future__ import annotations

import sys
from typing import Any

import huey

from . import Driver


class HueyDriver(Driver):
    name = "huey"
    bulk_note = "no bulk API: one call per task in a loop"

    def __init__(self, redis_url: str, **options: Any) -> None:
        super().__init__(redis_url, **options)
        from benchmarks.tasks import huey_tasks

        self.task = huey_tasks.run

    def version(self) -> str:
        return huey.__version__

    def enqueue_one(self, data: dict[str, Any]) -> None:
        self.task(data)

    def enqueue_bulk(self, items: list[dict[str, Any]]) -> None:
        for data in items:
            self.task(data)

    def worker_argv(self, processes: int) -> list[str]:
        return [sys.executable, "-m", "huey.bin.huey_consumer", "benchmarks.tasks.huey_tasks.huey",
                "-k", "process", "-w", str(processes), "-q"]


DRIVER = HueyDriver
