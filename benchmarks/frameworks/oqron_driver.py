from __future__ import annotations

import importlib
from typing import Any

from oqron import OqronKit, __version__, define_config

from . import Driver, venv_bin

PROJECT = "bench"
APP = "benchmarks.tasks.oqron_tasks"


class OqronDriver(Driver):
    name = "oqron"
    bulk_note = "Queue.add_bulk (one call for the whole list)"

    def __init__(self, redis_url: str, **options: Any) -> None:
        super().__init__(redis_url, **options)
        self.storage = options.get("storage") or redis_url
        self.broker = options.get("broker") or redis_url
        self.lock = options.get("lock") or redis_url
        self.app = options.get("app") or APP
        self.kit = OqronKit.init(define_config(project=PROJECT, storage=self.storage,
                                               broker=self.broker, lock=self.lock))
        self.queue = importlib.import_module(self.app).__dict__[options.get("queue", "bench")]

    def version(self) -> str:
        return __version__

    def enqueue_one(self, data: dict[str, Any]) -> None:
        self.queue.add(data)

    def enqueue_bulk(self, items: list[dict[str, Any]]) -> None:
        self.queue.add_bulk(items)

    def worker_argv(self, processes: int) -> list[str]:
        return [venv_bin("oqron-master"), "--app", self.app, "--workers", str(processes),
                "--storage", self.storage, "--broker", self.broker, "--lock", self.lock,
                "--project", PROJECT, "--log-level", "WARNING"]

    def close(self) -> None:
        OqronKit.stop()


DRIVER = OqronDriver
