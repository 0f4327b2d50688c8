"""oqron queue for the crash test: retries without backoff, so that the time measured is the
requeue itself, not the retry policy's delay (the default policy waits about 2 s)."""

from benchmarks.tasks import common
from oqron import Retries, queue

crashy = queue("crashy", retries=Retries(max=3, strategy="fixed", base_delay=0.0))


@crashy.handler
def run(ctx):
    common.run(ctx.data)
