"""RQ job function for the benchmark (RQ imports it by dotted path)."""

from benchmarks.tasks import common


def run(data):
    common.run(data)
