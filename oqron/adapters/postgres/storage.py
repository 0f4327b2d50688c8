"""PostgreSQL storage: job records in one JSONB table, documents in another (see ``schema``).

Every method is one statement. ``update_job`` checks its expectations and applies changes and
capped appends in a single ``UPDATE``; ``count_jobs`` and ``prune_jobs`` are decided by SQL on
the (queue, status, time) indexes, never by reading records into Python. Times are the
server's (``clock_timestamp()``), like Redis's ``TIME``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from psycopg2 import sql

from ... import codec
from ..base import APPEND_CAPS, Storage
from .connection import PostgresAdapter

CREATE_JOBS = """/* oqron:create_jobs */
WITH rows AS (
    SELECT t.r, t.ord FROM jsonb_array_elements(%(records)s::jsonb) WITH ORDINALITY AS t(r, ord)
), names AS (
    INSERT INTO oqron_job_queues (scope, queue)
    SELECT DISTINCT %(scope)s, r ->> 'queue' FROM rows
    ON CONFLICT DO NOTHING
)
INSERT INTO oqron_jobs (scope, id, record)
SELECT %(scope)s, r ->> 'id', r FROM rows ORDER BY ord
ON CONFLICT (scope, id) DO NOTHING
RETURNING id"""

# Expectations, shared by jobs and documents ({doc} is the column): non-null scalar values by
# containment, None ("missing or null") and lists/objects by exact equality.
EXPECT = """{doc} @> p.contains
    AND NOT EXISTS (SELECT 1 FROM jsonb_each(p.exact) AS x
                    WHERE coalesce({doc} -> x.key, 'null') IS DISTINCT FROM x.value)"""

UPDATE_JOB = """/* oqron:update_job */
WITH p AS (
    SELECT %(changes)s::jsonb AS changes, %(append)s::jsonb AS append, %(caps)s::jsonb AS caps,
           %(statuses)s::text[] AS statuses, %(contains)s::jsonb AS contains, %(exact)s::jsonb AS exact
)
UPDATE oqron_jobs j SET
    record = (SELECT n.r || coalesce((
                  SELECT jsonb_object_agg(a.key, oqron_append_capped(n.r -> a.key, a.value,
                                                                     (p.caps ->> a.key)::integer))
                  FROM jsonb_each(p.append) AS a), '{}')
              FROM (SELECT j.record || p.changes AS r) AS n),
    status_at = CASE WHEN (p.changes ->> 'status') <> j.status THEN clock_timestamp()
                     ELSE j.status_at END
FROM p
WHERE j.scope = %(scope)s AND j.id = %(id)s
    AND (p.statuses IS NULL OR j.status = ANY (p.statuses))
    AND """ + EXPECT.format(doc="j.record") + """
RETURNING 1"""

PRUNE_JOBS = """/* oqron:prune_jobs */
WITH doomed AS (
    (SELECT id FROM oqron_jobs
     WHERE scope = %(scope)s AND queue = %(queue)s AND status = %(status)s
         AND %(keep)s::integer IS NOT NULL
     ORDER BY status_at DESC, id DESC OFFSET %(keep)s)
    UNION
    (SELECT id FROM oqron_jobs
     WHERE scope = %(scope)s AND queue = %(queue)s AND status = %(status)s
         AND status_at < now() - make_interval(secs => %(age)s::float8))
), gone AS (
    DELETE FROM oqron_jobs j USING doomed d WHERE j.scope = %(scope)s AND j.id = d.id RETURNING 1
)
SELECT count(*) FROM gone"""

PUT_DOC = """/* oqron:put_doc */
INSERT INTO oqron_docs AS d (scope, namespace, key, doc)
VALUES (%(scope)s, %(namespace)s, %(key)s, %(doc)s::jsonb)
ON CONFLICT (scope, namespace, key) DO UPDATE SET doc = EXCLUDED.doc
WHERE %(fence)s::bigint IS NULL OR coalesce((d.doc ->> '_fence')::numeric, 0) <= %(fence)s::bigint
RETURNING 1"""

REPLACE_DOC = """/* oqron:replace_doc */
WITH p AS (SELECT %(contains)s::jsonb AS contains, %(exact)s::jsonb AS exact)
UPDATE oqron_docs d SET doc = %(doc)s::jsonb
FROM p
WHERE d.scope = %(scope)s AND d.namespace = %(namespace)s AND d.key = %(key)s
    AND (%(fence)s::bigint IS NULL OR coalesce((d.doc ->> '_fence')::numeric, 0) <= %(fence)s::bigint)
    AND """ + EXPECT.format(doc="d.doc") + """
RETURNING 1"""


def split_expect(expect: Mapping[str, Any] | None) -> dict[str, str]:
    """Parameters of ``EXPECT``: what containment can check, and what needs exact equality."""
    contains: dict[str, Any] = {}
    exact: dict[str, Any] = {}
    for field, value in (expect or {}).items():
        if value is None or isinstance(value, (dict, list)):
            exact[field] = value
        else:
            contains[field] = value
    return {"contains": codec.dumps(contains), "exact": codec.dumps(exact)}


def list_statement(queue: str | None, status: str | None, oldest_first: bool, count: bool) -> sql.Composed:
    """Listing or counting by the indexes: (queue, status, time), (status, time), (queue, time).

    Only constant fragments are composed here; every value stays a parameter.
    """
    where = [sql.SQL("scope = %(scope)s")]
    if queue is not None:
        where.append(sql.SQL("queue = %(queue)s"))
    if status is not None:
        where.append(sql.SQL("status = %(status)s"))
    condition = sql.SQL(" AND ").join(where)
    if count:
        return sql.SQL("/* oqron:count_jobs */ SELECT count(*) FROM oqron_jobs WHERE {}").format(condition)
    stamp = sql.SQL("status_at" if status is not None else "created_at")
    order = sql.SQL("ASC" if oldest_first else "DESC")
    return sql.SQL(
        "/* oqron:list_jobs */ SELECT record FROM oqron_jobs WHERE {} "
        "ORDER BY {stamp} {order}, id {order} LIMIT %(limit)s OFFSET %(offset)s"
    ).format(condition, stamp=stamp, order=order)


class PostgresStorage(PostgresAdapter, Storage):
    def create_jobs(self, records: Sequence[Mapping[str, Any]]) -> list[bool]:
        if not records:
            return []
        params = {"scope": self.scope, "records": codec.dumps([dict(r) for r in records])}
        inserted = {row[0] for row in self.query(CREATE_JOBS, params)}
        flags = []
        for record in records:  # a repeated id within the batch: only its first copy counts
            flags.append(record["id"] in inserted)
            inserted.discard(record["id"])
        return flags

    def get_job(self, job_id: str) -> dict[str, Any] | None:
        row = self.one(
            "SELECT record FROM oqron_jobs WHERE scope = %s AND id = %s", (self.scope, job_id)
        )
        return row[0] if row else None

    def get_jobs(self, job_ids: Sequence[str]) -> list[dict[str, Any] | None]:
        if not job_ids:
            return []
        rows = self.query(
            "SELECT id, record FROM oqron_jobs WHERE scope = %s AND id = ANY (%s)",
            (self.scope, list(job_ids)),
        )
        found: dict[str, dict[str, Any]] = dict(rows)
        return [found.get(job_id) for job_id in job_ids]

    def update_job(
        self,
        job_id: str,
        changes: Mapping[str, Any],
        *,
        expect: Mapping[str, Any] | None = None,
        expect_status: Sequence[str] | None = None,
        append: Mapping[str, Sequence[Any]] | None = None,
    ) -> bool:
        if expect_status is not None and not expect_status:
            return False  # no status allowed
        appends = {field: list(entries) for field, entries in (append or {}).items() if entries}
        params = {
            "scope": self.scope,
            "id": job_id,
            "changes": codec.dumps(dict(changes)),
            "append": codec.dumps(appends),
            "caps": codec.dumps({f: APPEND_CAPS[f] for f in appends if f in APPEND_CAPS}),
            "statuses": None if expect_status is None else list(expect_status),
            **split_expect(expect),
        }
        return bool(self.query(UPDATE_JOB, params))

    def list_jobs(
        self,
        queue: str | None = None,
        status: str | None = None,
        limit: int = 100,
        offset: int = 0,
        oldest_first: bool = False,
    ) -> list[dict[str, Any]]:
        if limit <= 0:
            return []
        params = {"scope": self.scope, "queue": queue, "status": status, "limit": limit,
                  "offset": max(0, offset)}
        return [row[0] for row in self.query(list_statement(queue, status, oldest_first, False), params)]

    def count_jobs(self, queue: str | None = None, status: str | None = None) -> int:
        params = {"scope": self.scope, "queue": queue, "status": status}
        row = self.one(list_statement(queue, status, False, True), params)
        return int(row[0]) if row else 0

    def queue_names(self) -> list[str]:
        rows = self.query(
            "SELECT queue FROM oqron_job_queues WHERE scope = %s ORDER BY queue", (self.scope,)
        )
        return [row[0] for row in rows]

    def delete_jobs(self, job_ids: Sequence[str]) -> int:
        if not job_ids:
            return 0
        row = self.one(
            "WITH gone AS (DELETE FROM oqron_jobs WHERE scope = %s AND id = ANY (%s) RETURNING 1) "
            "SELECT count(*) FROM gone",
            (self.scope, list(job_ids)),
        )
        return int(row[0]) if row else 0

    def prune_jobs(
        self, queue: str, status: str, *, keep: int | None = None, older_than: float | None = None
    ) -> int:
        if keep is None and older_than is None:
            return 0
        params = {"scope": self.scope, "queue": queue, "status": status,
                  "keep": None if keep is None else max(0, keep), "age": older_than}
        row = self.one(PRUNE_JOBS, params)
        return int(row[0]) if row else 0

    def put_doc(
        self,
        namespace: str,
        key: str,
        doc: Mapping[str, Any],
        *,
        expect: Mapping[str, Any] | None = None,
        fence: int | None = None,
    ) -> bool:
        payload = dict(doc)
        if fence is not None:
            payload["_fence"] = fence
        params = {"scope": self.scope, "namespace": namespace, "key": key,
                  "doc": codec.dumps(payload), "fence": fence}
        if expect is None:
            return bool(self.query(PUT_DOC, params))
        return bool(self.query(REPLACE_DOC, {**params, **split_expect(expect)}))

    def get_doc(self, namespace: str, key: str) -> dict[str, Any] | None:
        row = self.one(
            "SELECT doc FROM oqron_docs WHERE scope = %s AND namespace = %s AND key = %s",
            (self.scope, namespace, key),
        )
        return row[0] if row else None

    def delete_doc(self, namespace: str, key: str) -> bool:
        rows = self.query(
            "DELETE FROM oqron_docs WHERE scope = %s AND namespace = %s AND key = %s RETURNING 1",
            (self.scope, namespace, key),
        )
        return bool(rows)

    def list_docs(self, namespace: str) -> dict[str, dict[str, Any]]:
        rows = self.query(
            "SELECT key, doc FROM oqron_docs WHERE scope = %s AND namespace = %s ORDER BY key",
            (self.scope, namespace),
        )
        return dict(rows)
