from __future__ import annotations

from typing import Any

import redis
import rq
from rq import Queue

from benchmarks.tasks.rq_tasks import run

from . import Driver, venv_bin


class RqDriver(Driver):
    name = "rq"
    bulk_note = "Queue.enqueue_many in one pipeline per 1,000"
    max_drain_jobs = 1500  # a work horse is forked per job: 49 jobs/s on the VM of 2026-12-04 22:00

    def __init__(self, redis_url: str, **options: Any) -> None:
        super().__init__(redis_url, **options)
        self.queue = Queue("bench", connection=redis.Redis.from_url(redis_url))

    def version(self) -> str:
        return rq.__version__

    def enqueue_one(self, data: dict[str, Any]) -> None:
        self.queue.enqueue(run, data)

    def enqueue_bulk(self, items: list[dict[str, Any]]) -> None:
        for start in range(0, len(items), 1000):
            with self.queue.connection.pipeline() as pipe:
                self.queue.enqueue_many([Queue.prepare_data(run, (d,)) for d in items[start:start + 1000]],
                                        pipeline=pipe)
                pipe.execute()

    def worker_argv(self, processes: int) -> list[str]:
        # worker-pool: N ordinary RQ workers (each forks a work horse per job) under one parent
        return [venv_bin("rq"), "worker-pool", "-n", str(processes), "-u", self.redis_url,
                "-l", "WARNING", "bench"]


DRIVER = RqDriver
