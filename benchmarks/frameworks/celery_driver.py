from __future__ import annotations

import sys
from typing import Any

import celery
from celery import group

from . import Driver


class CeleryDriver(Driver):
    name = "celery"
    bulk_note = "group(...).apply_async() per 1,000 (one publish per job on one connection)"
    max_drain_jobs = 5000  # 500-1,600 jobs/s here: 20,000 would cost up to a minute per round
    max_bulk_jobs = 5000  # 530 jobs/s on the VM of 2026-12-04 22:00: 20,000 took 39 s per round

    def __init__(self, redis_url: str, **options: Any) -> None:
        super().__init__(redis_url, **options)
        from benchmarks.tasks import celery_tasks

        self.task = celery_tasks.run

    def version(self) -> str:
        return celery.__version__

    def enqueue_one(self, data: dict[str, Any]) -> None:
        self.task.delay(data)

    def enqueue_bulk(self, items: list[dict[str, Any]]) -> None:
        for start in range(0, len(items), 1000):
            group(self.task.s(d) for d in items[start:start + 1000]).apply_async()

    def worker_argv(self, processes: int) -> list[str]:
        return [sys.executable, "-m", "celery", "-A", "benchmarks.tasks.celery_tasks", "worker",
                "-P", "prefork", "-c", str(processes), "-Q", "bench", "--loglevel", "WARNING",
                "--without-gossip", "--without-mingle", "--without-heartbeat"]


DRIVER = CeleryDriver
