"""Celery app for the benchmark: Redis broker, JSON, no result backend."""

import os

from celery import Celery

from benchmarks.tasks import common

app = Celery("bench", broker=os.environ["BENCH_REDIS"])
app.conf.update(
    task_serializer="json",
    accept_content=["json"],
    task_ignore_result=True,
    task_default_queue="bench",
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)


@app.task(name="bench.run", ignore_result=True)
def run(data):
    common.run(data)
