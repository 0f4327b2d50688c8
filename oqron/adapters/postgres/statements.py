"""The broker's SQL: each step one statement, so each is atomic and costs one round trip.

Tables in ``schema``. Common parameters: ``scope`` (the isolation prefix; every statement
filters by it), ``now`` (seconds since the epoch from an injected clock, or NULL for the
server's ``now()`` — with autocommit, the start of this very statement) and ``channel`` (the
queue's NOTIFY channel, see ``listen``).

Claim order: a ready entry sorts by ``(rank, seq)``, lowest first. ``seq`` comes from the
``oqron_entry_seq`` sequence each time the job becomes ready (publish, promotion, requeue);
``rank`` is the job's priority under the ``priority`` strategy and 0 otherwise, and ``lifo``
stores ``-seq``. This is ``base.entry_score`` split in two columns, so it needs no 33-bit
budget for ``seq``.
"""

NOW = "coalesce(to_timestamp(%(now)s::float8), now())"

# publish: insert entries for ids not in the queue in any state (ready, delayed or leased),
# remember the strategy when one is given, and wake the queue's claimers.
# Parameters: queue, ids (in publish order), strategy (NULL = the remembered one, fifo if
# none), priority, delayed (bool), delay (seconds), now, channel.
# Returns one row when at least one id was added, none otherwise.
PUBLISH = f"""/* oqron:publish */
WITH remembered AS (
    INSERT INTO oqron_queues (scope, queue, strategy)
    SELECT %(scope)s, %(queue)s, %(strategy)s WHERE %(strategy)s::text IS NOT NULL
    ON CONFLICT DO NOTHING
), changed AS (
    UPDATE oqron_queues SET strategy = %(strategy)s
    WHERE scope = %(scope)s AND queue = %(queue)s AND strategy <> %(strategy)s
), s AS (
    SELECT coalesce(%(strategy)s, (SELECT strategy FROM oqron_queues
                                   WHERE scope = %(scope)s AND queue = %(queue)s), 'fifo') AS strategy
), added AS (
    INSERT INTO oqron_entries (scope, queue, job_id, state, priority, rank, seq, due)
    SELECT %(scope)s, %(queue)s, t.id,
        CASE WHEN %(delayed)s THEN 'delayed' ELSE 'ready' END,
        %(priority)s,
        CASE WHEN %(delayed)s THEN NULL WHEN s.strategy = 'priority' THEN %(priority)s ELSE 0 END,
        CASE WHEN %(delayed)s THEN NULL WHEN s.strategy = 'lifo' THEN -nextval('oqron_entry_seq')
             ELSE nextval('oqron_entry_seq') END,
        CASE WHEN %(delayed)s THEN {NOW} + make_interval(secs => %(delay)s) END
    FROM unnest(%(ids)s::text[]) WITH ORDINALITY AS t(id, ord), s
    ORDER BY t.ord
    ON CONFLICT DO NOTHING
    RETURNING 1
)
SELECT pg_notify(%(channel)s, '') FROM (SELECT count(*) AS n FROM added) AS c WHERE c.n > 0"""

# claim: lease the first ready job of the first unpaused queue, in the order of ``queues``.
# In the same statement, due delayed entries (up to ``promote`` per queue, oldest due first)
# become ready with a fresh seq: the winner is chosen among the queues' heads and the entries
# promoted right now, so promotion is atomic with the claim. ``FOR UPDATE SKIP LOCKED`` lets
# concurrent claimers pass each other instead of queueing on the same head.
# Parameters: queues, consumer, ttl (seconds), promote, now.
# Returns one row: queue, job id, token (NULLs when nothing was claimable) and the seconds
# until the next delayed entry of those queues is due (NULL if none).
CLAIM = f"""/* oqron:claim */
WITH q AS (  -- the listed queues, unpaused, with their strategy: one key lookup each
    SELECT t.name, t.ord, coalesce(m.strategy, 'fifo') AS strategy
    FROM unnest(%(queues)s::text[]) WITH ORDINALITY AS t(name, ord)
    LEFT JOIN LATERAL (
        SELECT strategy, paused FROM oqron_queues
        WHERE scope = %(scope)s AND queue = t.name LIMIT 1) AS m ON true
    WHERE m.paused IS NOT TRUE
), due AS (
    SELECT q.ord, q.strategy, d.queue, d.job_id, d.priority, d.due
    FROM q CROSS JOIN LATERAL (
        SELECT e.queue, e.job_id, e.priority, e.due FROM oqron_entries e
        WHERE e.scope = %(scope)s AND e.queue = q.name AND e.state = 'delayed' AND e.due <= {NOW}
        ORDER BY e.due, e.job_id LIMIT %(promote)s
        FOR UPDATE SKIP LOCKED) AS d
), promoted AS MATERIALIZED (
    SELECT queue, job_id, ord,
        CASE strategy WHEN 'priority' THEN priority ELSE 0 END AS rank,
        CASE strategy WHEN 'lifo' THEN -1 ELSE 1 END * nextval('oqron_entry_seq') AS seq
    FROM due ORDER BY due, job_id
), heads AS (
    SELECT h.queue, h.job_id, q.ord, h.rank, h.seq
    FROM q CROSS JOIN LATERAL (
        SELECT e.queue, e.job_id, e.rank, e.seq FROM oqron_entries e
        WHERE e.scope = %(scope)s AND e.queue = q.name AND e.state = 'ready'
        ORDER BY e.rank, e.seq LIMIT 1
        FOR UPDATE SKIP LOCKED) AS h
), winner AS (
    SELECT c.queue, c.job_id FROM (
        SELECT queue, job_id, ord, rank, seq FROM heads
        UNION ALL SELECT queue, job_id, ord, rank, seq FROM promoted) AS c
    ORDER BY c.ord, c.rank, c.seq LIMIT 1
), settled AS (
    UPDATE oqron_entries e SET state = 'ready', rank = p.rank, seq = p.seq, due = NULL
    FROM promoted p
    WHERE e.scope = %(scope)s AND e.queue = p.queue AND e.job_id = p.job_id
        AND NOT EXISTS (SELECT 1 FROM winner w WHERE w.queue = p.queue AND w.job_id = p.job_id)
), leased AS (
    UPDATE oqron_entries e SET state = 'leased', due = {NOW} + make_interval(secs => %(ttl)s),
        token = nextval('oqron_lease_seq')::text, consumer = %(consumer)s
    FROM winner w
    WHERE e.scope = %(scope)s AND e.queue = w.queue AND e.job_id = w.job_id
    RETURNING e.queue, e.job_id, e.token
)
SELECT l.queue, l.job_id, l.token,
    (SELECT extract(epoch FROM min(n.due) - {NOW})::float8
     FROM q CROSS JOIN LATERAL (
         SELECT e.due FROM oqron_entries e
         WHERE e.scope = %(scope)s AND e.queue = q.name AND e.state = 'delayed'
         ORDER BY e.due LIMIT 1) AS n)
FROM (VALUES (1)) AS one LEFT JOIN leased l ON true"""

# nack and release end alike: the lease must be current, s is the queue's strategy, and the
# queue's claimers are woken. Returns one row if the token was current, none otherwise.
_GIVE_BACK = """
        token = NULL, consumer = NULL
    FROM (SELECT coalesce((SELECT strategy FROM oqron_queues
                           WHERE scope = %(scope)s AND queue = %(queue)s), 'fifo') AS strategy) AS s
    WHERE e.scope = %(scope)s AND e.queue = %(queue)s AND e.job_id = %(job_id)s
        AND e.state = 'leased' AND e.token = %(token)s
    RETURNING 1
)
SELECT pg_notify(%(channel)s, '') FROM back"""

# nack: give a leased job back, ready now (fresh seq, its remembered priority) or delayed.
# Parameters: queue, job_id, token, delayed (bool), delay (seconds), now, channel.
NACK = f"""/* oqron:nack */
WITH back AS (
    UPDATE oqron_entries e SET
        state = CASE WHEN %(delayed)s THEN 'delayed' ELSE 'ready' END,
        rank = CASE WHEN %(delayed)s THEN NULL WHEN s.strategy = 'priority' THEN e.priority ELSE 0 END,
        seq = CASE WHEN %(delayed)s THEN NULL WHEN s.strategy = 'lifo' THEN -nextval('oqron_entry_seq')
                   ELSE nextval('oqron_entry_seq') END,
        due = CASE WHEN %(delayed)s THEN {NOW} + make_interval(secs => %(delay)s) END,""" + _GIVE_BACK

# release: hand a leased job back to the head of its queue (see Broker.release): its seq is
# just below the lowest ready seq of its rank, or a fresh one when there is none.
# Parameters: queue, job_id, token, channel.
RELEASE = """/* oqron:release */
WITH back AS (
    UPDATE oqron_entries e SET
        state = 'ready',
        rank = CASE WHEN s.strategy = 'priority' THEN e.priority ELSE 0 END,
        seq = coalesce(
            (SELECT min(h.seq) - 1 FROM oqron_entries h
             WHERE h.scope = e.scope AND h.queue = e.queue AND h.state = 'ready'
                 AND h.rank = CASE WHEN s.strategy = 'priority' THEN e.priority ELSE 0 END),
            CASE WHEN s.strategy = 'lifo' THEN -nextval('oqron_entry_seq')
                 ELSE nextval('oqron_entry_seq') END),
        due = NULL,""" + _GIVE_BACK

# renew: push back many lease deadlines at once. Parameters: queues, ids, tokens (parallel
# arrays), ttl, now. Returns the (queue, job id, token) of the leases renewed.
RENEW = f"""/* oqron:renew */
UPDATE oqron_entries e SET due = {NOW} + make_interval(secs => %(ttl)s)
FROM unnest(%(queues)s::text[], %(ids)s::text[], %(tokens)s::text[]) AS l(queue, job_id, token)
WHERE e.scope = %(scope)s AND e.queue = l.queue AND e.job_id = l.job_id
    AND e.state = 'leased' AND e.token = l.token
RETURNING e.queue, e.job_id, e.token"""

ACK = """/* oqron:ack */
DELETE FROM oqron_entries
WHERE scope = %(scope)s AND queue = %(queue)s AND job_id = %(job_id)s
    AND state = 'leased' AND token = %(token)s
RETURNING 1"""

EXPIRED = f"""/* oqron:expired */
SELECT job_id, token, consumer FROM oqron_entries
WHERE scope = %(scope)s AND queue = %(queue)s AND state = 'leased' AND due <= {NOW}
ORDER BY due, job_id LIMIT %(limit)s"""

# drain: ready entries in claim order, then delayed ones by due time.
DRAIN = """/* oqron:drain */
WITH gone AS (
    DELETE FROM oqron_entries
    WHERE scope = %(scope)s AND queue = %(queue)s AND state IN ('ready', 'delayed')
    RETURNING job_id, state, rank, seq, due
)
SELECT job_id FROM gone ORDER BY state = 'delayed', rank, seq, due, job_id"""

RESUME = """/* oqron:resume */
WITH resumed AS (
    UPDATE oqron_queues SET paused = false WHERE scope = %(scope)s AND queue = %(queue)s
)
SELECT pg_notify(%(channel)s, '')"""

OBLITERATE = """/* oqron:obliterate */
WITH entries AS (
    DELETE FROM oqron_entries WHERE scope = %(scope)s AND queue = %(queue)s
), meta AS (
    DELETE FROM oqron_queues WHERE scope = %(scope)s AND queue = %(queue)s
)
SELECT 1"""
