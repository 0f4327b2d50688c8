"""The tables oqron keeps in PostgreSQL, created and versioned by oqron itself.

``oqron_schema_migrations`` records the versions applied. ``migrate`` runs the missing ones in
one transaction under an advisory lock, so several processes starting together on an empty
database apply each migration exactly once, and re-running it changes nothing. Table names are
constants; the only identifier that comes from outside (the URL's ``schema=``) is validated
before it gets here and is always quoted by ``psycopg2.sql.Identifier``.

Every row carries ``scope``, the isolation prefix ``oqron:{project}:{environment}:``, and every
index starts with it, so one prefix never reads another's rows.

Tables (version 1):

* ``oqron_jobs`` — one row per job: the record as JSONB, ``queue`` and ``status`` generated
  from it (so they can never disagree with the record), and the server times it was created and
  entered its status. Btree indexes serve listing, counting and pruning by (queue, status, time);
  a GIN index (``jsonb_path_ops``) serves containment (``@>``) filters on records.
* ``oqron_job_queues`` — every queue name that has had a record (``queue_names``).
* ``oqron_docs`` — small JSON documents by (namespace, key).
* ``oqron_queues`` — broker state per queue: remembered strategy, pause flag.
* ``oqron_entries`` — broker state per queued job: ``ready`` (claim order ``(rank, seq)``),
  ``delayed`` (``due`` = when it becomes ready) or ``leased`` (``due`` = lease deadline, plus
  token and consumer). The job's priority is kept for its requeues.
* ``oqron_locks`` — named leases for ``PostgresLock``: owner, expiry and fencing epoch.
"""

from __future__ import annotations

from typing import Any

from psycopg2 import sql

#: Advisory-lock key space of oqron (``'oqrn'`` as a 32-bit integer); second keys below.
LOCK_SPACE = 0x6F71726E
MIGRATION_LOCK = 0
#: ``PostgresLock`` serialises each named lock in its own key space.
LEASE_LOCK_SPACE = LOCK_SPACE + 1

V1 = [
    """CREATE TABLE oqron_jobs (
        scope      text NOT NULL,
        id         text NOT NULL,
        record     jsonb NOT NULL,
        queue      text GENERATED ALWAYS AS (record ->> 'queue') STORED,
        status     text GENERATED ALWAYS AS (record ->> 'status') STORED,
        created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
        status_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
        PRIMARY KEY (scope, id))""",
    "CREATE INDEX oqron_jobs_by_queue_status ON oqron_jobs (scope, queue, status, status_at, id)",
    "CREATE INDEX oqron_jobs_by_status ON oqron_jobs (scope, status, status_at, id)",
    "CREATE INDEX oqron_jobs_by_queue ON oqron_jobs (scope, queue, created_at, id)",
    "CREATE INDEX oqron_jobs_record ON oqron_jobs USING gin (record jsonb_path_ops)",
    "CREATE TABLE oqron_job_queues (scope text, queue text, PRIMARY KEY (scope, queue))",
    """CREATE TABLE oqron_docs (
        scope text, namespace text, key text, doc jsonb NOT NULL,
        PRIMARY KEY (scope, namespace, key))""",
    """CREATE TABLE oqron_queues (
        scope    text,
        queue    text,
        strategy text NOT NULL DEFAULT 'fifo',
        paused   boolean NOT NULL DEFAULT false,
        PRIMARY KEY (scope, queue))""",
    "CREATE SEQUENCE oqron_entry_seq",
    "CREATE SEQUENCE oqron_lease_seq",
    """CREATE TABLE oqron_entries (
        scope    text NOT NULL,
        queue    text NOT NULL,
        job_id   text NOT NULL,
        state    text NOT NULL CHECK (state IN ('ready', 'delayed', 'leased')),
        priority integer NOT NULL DEFAULT 0,
        rank     bigint,
        seq      bigint,
        due      timestamptz,
        token    text,
        consumer text,
        PRIMARY KEY (scope, queue, job_id))""",
    "CREATE INDEX oqron_entries_ready ON oqron_entries (scope, queue, rank, seq) WHERE state = 'ready'",
    "CREATE INDEX oqron_entries_by_state ON oqron_entries (scope, queue, state, due, job_id)",
    "CREATE INDEX oqron_entries_leased ON oqron_entries (scope, consumer) WHERE state = 'leased'",
    """CREATE TABLE oqron_locks (
        scope      text,
        key        text,
        owner      text,
        expires_at timestamptz,
        epoch      bigint NOT NULL DEFAULT 0,
        PRIMARY KEY (scope, key))""",
    # The last ``cap`` elements of ``old || entries`` (``old`` is treated as [] unless an array).
    """CREATE FUNCTION oqron_append_capped(old jsonb, entries jsonb, cap integer)
        RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$
        WITH joined AS (
            SELECT CASE jsonb_typeof(old) WHEN 'array' THEN old ELSE '[]' END || entries AS list)
        SELECT CASE WHEN cap IS NULL OR jsonb_array_length(list) <= cap THEN list
               ELSE (SELECT jsonb_agg(e ORDER BY i)
                     FROM jsonb_array_elements(list) WITH ORDINALITY AS t(e, i)
                     WHERE i > jsonb_array_length(list) - cap)
               END
        FROM joined $$""",
]

#: (version, name, statements), in order. Never edit a released entry: add a new one.
MIGRATIONS: list[tuple[int, str, list[str]]] = [(1, "jobs, documents, broker, locks", V1)]
LATEST = MIGRATIONS[-1][0]

_CREATE_LEDGER = """CREATE TABLE IF NOT EXISTS oqron_schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now())"""


def migrate(conn: Any, schema: str | None = None) -> int:
    """Bring the schema up to date; returns the version it is at. Safe to call concurrently
    from many processes and as often as wanted."""
    with conn.cursor() as cur:
        if _version(cur) >= LATEST:  # the common case: no lock, two cheap reads
            return LATEST
    conn.autocommit = False
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s, %s)", (LOCK_SPACE, MIGRATION_LOCK))
            if schema is not None:
                cur.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
            cur.execute(_CREATE_LEDGER)
            current = _version(cur)
            for version, name, statements in MIGRATIONS:
                if version > current:
                    for statement in statements:
                        cur.execute(statement)
                    cur.execute(
                        "INSERT INTO oqron_schema_migrations (version, name) VALUES (%s, %s)",
                        (version, name),
                    )
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    finally:
        conn.autocommit = True
    return max(current, LATEST)


def _version(cur: Any) -> int:
    cur.execute("SELECT to_regclass('oqron_schema_migrations') IS NOT NULL")
    if not cur.fetchone()[0]:
        return 0
    cur.execute("SELECT coalesce(max(version), 0) FROM oqron_schema_migrations")
    return int(cur.fetchone()[0])
