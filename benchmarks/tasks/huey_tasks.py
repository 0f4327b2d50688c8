"""Huey app for the benchmark: RedisHuey (blocking dequeue), results off."""

import os

from huey import RedisHuey

from benchmarks.tasks import common

huey = RedisHuey("bench", url=os.environ["BENCH_REDIS"], results=False)


@huey.task()
def run(data):
    common.run(data)
