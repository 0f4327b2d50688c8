"""oqron queue for the benchmark (``oqron-master --app benchmarks.tasks.oqron_tasks``)."""

from benchmarks.tasks import common
from oqron import queue

bench = queue("bench")


@bench.handler
def run(ctx):
    common.run(ctx.data)


empty = queue("empty")


@empty.handler
def nothing(ctx):
    """No completion counting: what oqron alone costs per job (``benchmarks.empty_handler``)."""
