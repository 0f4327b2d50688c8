"""A broker whose server restarts (same port, data kept) keeps working without being rebuilt:
the first call after the restart succeeds, and a blocking claim is still woken by a publish
(PostgreSQL must LISTEN again on a new connection; Redis must block on the markers again)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import psycopg2
import pytest

from oqron.adapters.base import Broker
from oqron.adapters.postgres import PostgresBroker
from oqron.adapters.redis import RedisBroker
from tests.support.pg_cluster import PgCluster, find_bin_dir
from tests.support.redis_server import RedisServer
from tests.support.wait import wait_for


@dataclass
class Server:
    make_broker: Callable[[str], Broker]
    restart: Callable[[], None]
    claim_is_blocked: Callable[[], bool]


@pytest.fixture(scope="module")
def pg_cluster() -> Iterator[PgCluster]:
    bin_dir = find_bin_dir()
    if bin_dir is None:
        pytest.skip("initdb/pg_ctl not installed: cannot run a private PostgreSQL cluster")
    cluster = PgCluster(bin_dir).init().start()
    yield cluster
    cluster.close()


@pytest.fixture(params=["redis", "postgres"])
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    if request.param == "redis":
        redis_server = RedisServer(durable=True).start()

        def redis_blocked() -> bool:
            return any(c.get("cmd") == "bzpopmin" for c in redis_server.client().client_list())

        def redis_restart() -> None:
            redis_server.kill()
            redis_server.start()

        yield Server(lambda prefix: RedisBroker(redis_server.url, prefix), redis_restart, redis_blocked)
        redis_server.close()
        return
    cluster: PgCluster = request.getfixturevalue("pg_cluster")

    def pg_blocked() -> bool:  # a listener connection opened since the restart, idle in its wait
        with psycopg2.connect(cluster.url) as conn, conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'oqron-listen'"
                        " AND state = 'idle' AND query LIKE 'LISTEN%%'")
            row = cur.fetchone()
        conn.close()
        return bool(row and row[0])

    def pg_restart() -> None:
        cluster.stop()
        cluster.start()

    yield Server(lambda prefix: PostgresBroker(cluster.url, prefix), pg_restart, pg_blocked)


def test_first_call_after_a_restart_succeeds_and_sees_the_data(server: Server, prefix: str) -> None:
    broker = server.make_broker(prefix)
    try:
        broker.publish("q", ["a", "b"])
        server.restart()
        assert broker.counts("q") == {"waiting": 2, "delayed": 0, "active": 0}
        lease = broker.claim(["q"], "c", 30.0)
        assert lease is not None and lease.job_id == "a"
    finally:
        broker.close()


@pytest.mark.timeout(60)
def test_a_blocking_claim_is_woken_after_a_restart(server: Server, prefix: str) -> None:
    consumer, producer = server.make_broker(prefix), server.make_broker(prefix)
    try:
        assert consumer.claim(["q"], "c", 30.0, timeout=0.05) is None  # sets up its wait
        server.restart()
        errors: list[BaseException] = []

        def publish_once_blocked() -> None:
            try:
                wait_for(server.claim_is_blocked, 10, interval=0.02, message="the claim to block")
                producer.publish("q", ["x"])
            except BaseException as exc:
                errors.append(exc)
                raise

        thread = threading.Thread(target=publish_once_blocked)
        thread.start()
        started = time.monotonic()
        lease = consumer.claim(["q"], "c", 30.0, timeout=4.0)  # same thread as before the restart
        took = time.monotonic() - started
        thread.join(10)
        assert not errors
        assert lease is not None and lease.job_id == "x"
        assert took < 2.0
    finally:
        consumer.close()
        producer.close()
