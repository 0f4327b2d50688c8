"""Dramatiq actor for the benchmark on its Redis broker."""

import os

import dramatiq
from dramatiq.brokers.redis import RedisBroker

from benchmarks.tasks import common

broker = RedisBroker(url=os.environ["BENCH_REDIS"])
dramatiq.set_broker(broker)


@dramatiq.actor(queue_name="bench", max_retries=0)
def run(data):
    common.run(data)
