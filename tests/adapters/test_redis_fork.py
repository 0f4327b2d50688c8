"""A producer that forks: the child adds jobs on a Redis connection of its own. Sharing the
parent's socket would cross the two processes' replies (the add path keeps one connection per
thread and notices a fork by a counter bumped in the child, not by a getpid() per add)."""

from __future__ import annotations

import os

from oqron import OqronKit, define_config, queue
from oqron.adapters.redis.packed import thread_connection


def test_a_forked_producer_adds_on_a_connection_of_its_own(redis_url: str) -> None:
    container = OqronKit.init(define_config(project="fork-add", storage=redis_url, broker=redis_url,
                                            lock=redis_url))
    try:
        jobs = queue("fork-add")
        jobs.add({"who": "parent"})  # opens the parent thread's connection
        client = container.broker.client  # type: ignore[attr-defined]
        parent_connection = thread_connection(client)
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: report, never return into pytest
            verdict = b"shared"
            try:
                if thread_connection(client) is not parent_connection:
                    ids = [jobs.add({"who": "child", "n": n}).id for n in range(50)]
                    found = [jobs.get_job(job_id) for job_id in ids]
                    mine = all(j is not None and j.data["who"] == "child" for j in found)
                    verdict = b"ok" if mine else b"lost"
            except BaseException as exc:  # noqa: BLE001 - reported to the parent
                verdict = repr(exc).encode()
            os.write(write, verdict)
            os._exit(0)
        os.close(write)
        parent_ids = [jobs.add({"who": "parent", "n": n}).id for n in range(50)]
        _, status = os.waitpid(pid, 0)
        verdict = os.read(read, 4096)
        os.close(read)
        assert os.waitstatus_to_exitcode(status) == 0
        assert verdict == b"ok"
        assert thread_connection(client) is parent_connection  # the parent keeps its own
        assert all(jobs.get_job(job_id).data["who"] == "parent" for job_id in parent_ids)  # type: ignore[union-attr]
        assert jobs.count() == 101
    finally:
        OqronKit.stop()
