"""With 100,000 jobs, the hot PostgreSQL statements are planned on indexes, never a sequential scan.

The rows are written in bulk with SQL (the adapters would take minutes under a loaded CI) in the
exact shape the adapters write them, then ANALYZEd so that the planner decides with real
statistics. The statements explained are the adapters' own.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from typing import Any

import pytest

from oqron.adapters.postgres import PostgresBroker, PostgresStorage
from oqron.adapters.postgres import statements as st
from oqron.adapters.postgres.broker import PROMOTE_LIMIT
from oqron.adapters.postgres.storage import list_statement
from tests.support.postgres import ScratchDatabase

ROWS = 100_000
DEEP = 90_000  # rows in the one deep queue; the rest spread over OTHER_QUEUES
OTHER_QUEUES = 500
TABLES = {"oqron_jobs", "oqron_entries", "oqron_queues"}
STATUSES = ["waiting", "active", "completed", "failed", "delayed"]
Loaded = tuple[Any, PostgresBroker, PostgresStorage]

JOBS = f"""
INSERT INTO oqron_jobs (scope, id, record)
SELECT %(scope)s, 'j' || i, jsonb_build_object(
    'id', 'j' || i,
    'queue', CASE WHEN i <= {DEEP} THEN 'deep' ELSE 'q' || (i % {OTHER_QUEUES}) END,
    'status', (ARRAY{STATUSES!r})[1 + i % 5],
    'data', jsonb_build_object('n', i), 'attempts_made', 0, 'lease_token', NULL,
    'timeline', '[]'::jsonb, 'logs', '[]'::jsonb)
FROM generate_series(1, {ROWS}) AS i"""

# 80 % ready, 10 % delayed (half of them due), 10 % leased.
ENTRIES = f"""
INSERT INTO oqron_entries (scope, queue, job_id, state, priority, rank, seq, due, token, consumer)
SELECT %(scope)s, CASE WHEN i <= {DEEP} THEN 'deep' ELSE 'q' || (i % {OTHER_QUEUES}) END, 'j' || i,
    CASE WHEN i % 10 < 8 THEN 'ready' WHEN i % 10 = 8 THEN 'delayed' ELSE 'leased' END,
    i % 5, CASE WHEN i % 10 < 8 THEN 0 END, CASE WHEN i % 10 < 8 THEN nextval('oqron_entry_seq') END,
    CASE WHEN i % 10 = 8 THEN now() + (i % 100 - 50) * interval '1 minute'
         WHEN i % 10 = 9 THEN now() + interval '1 minute' END,
    CASE WHEN i % 10 = 9 THEN i::text END, CASE WHEN i % 10 = 9 THEN 'c' || (i % 16) END
FROM generate_series(1, {ROWS}) AS i"""

QUEUES = f"""
INSERT INTO oqron_queues (scope, queue, strategy)
SELECT %(scope)s, 'q' || i, 'fifo' FROM generate_series(0, {OTHER_QUEUES - 1}) AS i
UNION ALL SELECT %(scope)s, 'deep', 'priority'"""


@pytest.fixture(scope="module")
def loaded(pg_database: ScratchDatabase) -> Iterator[Loaded]:
    # A schema of its own: the 100k rows and their statistics do not weigh on other tests.
    schema, scope = f"plans_{secrets.token_hex(4)}", "oqron:plans:test:"
    url = f"{pg_database.url}?schema={schema}"
    broker, storage = PostgresBroker(url, scope), PostgresStorage(url, scope)
    broker.counts("deep")  # creates the schema and its tables
    conn = pg_database.connect()
    with conn.cursor() as cur:
        cur.execute(f"SET search_path TO {schema}")
        for statement in (JOBS, ENTRIES, QUEUES):
            cur.execute(statement.replace("%", "%%").replace("%%(scope)s", "%(scope)s"), {"scope": scope})
        cur.execute("ANALYZE oqron_jobs; ANALYZE oqron_entries; ANALYZE oqron_queues")
    yield conn, broker, storage
    broker.close()
    storage.close()
    with conn.cursor() as cur:
        cur.execute(f"DROP SCHEMA {schema} CASCADE")
    conn.close()


def scans(node: dict[str, Any]) -> Iterator[tuple[str, str]]:
    if "Relation Name" in node:
        yield node["Node Type"], node["Relation Name"]
    for child in node.get("Plans", []):
        yield from scans(child)


def assert_indexed(conn: Any, statement: Any, params: dict[str, Any]) -> list[tuple[str, str]]:
    with conn.cursor() as cur:
        query = cur.mogrify(statement, params)
        cur.execute(b"EXPLAIN (FORMAT JSON) " + query)
        plan = cur.fetchone()[0]
        if isinstance(plan, str):
            plan = json.loads(plan)
        cur.execute(b"EXPLAIN " + query)
        text = "\n".join(row[0] for row in cur.fetchall())
    found = list(scans(plan[0]["Plan"]))
    seq = [(kind, table) for kind, table in found if kind == "Seq Scan" and table in TABLES]
    assert not seq, f"sequential scan of {seq} in:\n{text}"
    assert {table for _, table in found} & TABLES, text
    return found


@pytest.mark.parametrize("queues", [["deep"], ["q1", "deep", "q7"]])
def test_claim_uses_indexes(loaded: Loaded, queues: list[str]) -> None:
    conn, broker, _ = loaded
    params = broker._params(queues=queues, consumer="c1", ttl=10.0, promote=PROMOTE_LIMIT)
    found = assert_indexed(conn, st.CLAIM, params)
    assert ("Index Scan", "oqron_entries") in found


@pytest.mark.parametrize("queue", ["deep", None])
def test_list_by_status_uses_indexes(loaded: Loaded, queue: str | None) -> None:
    conn, _, storage = loaded
    for oldest_first in (False, True):
        params = {"scope": storage.scope, "queue": queue, "status": "completed", "limit": 100, "offset": 0}
        assert_indexed(conn, list_statement(queue, "completed", oldest_first, False), params)


def test_count_and_expiry_use_indexes(loaded: Loaded) -> None:
    conn, broker, storage = loaded
    params = {"scope": storage.scope, "queue": "deep", "status": "failed"}
    assert_indexed(conn, list_statement("deep", "failed", False, True), params)
    assert_indexed(conn, st.EXPIRED, broker._params("deep", limit=1000))


def test_claim_on_the_loaded_queue_is_correct(loaded: Loaded) -> None:
    _, broker, _ = loaded
    lease = broker.claim(["deep"], "c1", 10)
    assert lease is not None and lease.queue == "deep"
    broker.ack(lease)


def test_the_check_catches_a_sequential_scan(loaded: Loaded) -> None:
    conn, _, _ = loaded
    unindexed = "SELECT record FROM oqron_jobs WHERE record ->> 'progress' = %(v)s"
    with pytest.raises(AssertionError, match="sequential scan"):
        assert_indexed(conn, unindexed, {"v": "50"})
