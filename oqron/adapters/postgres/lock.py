"""PostgreSQL lock: a lease table whose rows are changed under transaction-level advisory locks.

Why not session advisory locks (``pg_advisory_lock`` held on a dedicated connection)? They
cannot keep the contract:

* **TTL.** A session lock lives exactly as long as its connection. A holder that hangs, or sits
  behind a network partition while its TCP connection stays up, keeps the lock for ever — yet
  the contract (and leader failover in about 3 s) needs the lock to lapse ``ttl`` seconds after
  the last renewal, whatever the holder's socket does.
* **Silent loss.** Conversely, a connection blip drops a session lock at once, while its holder
  still believes it leads; nothing tells it, and nothing stops its late writes.
* **Fencing epochs and owners.** The epoch must rise at every hand-over and survive every
  holder; ``owner()`` must name the holder from any process. Both need a row anyway.
* **Processes.** A session lock belongs to one connection of one process, so it cannot be
  renewed from a forked child or a reconnected socket, and it breaks behind a
  transaction-pooling proxy.

So the lock *is* a row of ``oqron_locks``: owner, ``expires_at`` on the server clock, epoch.
Every change to a key runs as one implicit transaction that first takes
``pg_advisory_xact_lock`` on the key, then reads and writes the row with a snapshot taken after
the lock. Operations on one key are thereby strictly one at a time — including the very first
acquisition of a key that has no row yet to lock — and each is a plain read-decide-write that is
easy to check. The advisory lock is released by the commit, by a rollback or by the connection
dying, so it can never outlive its statement; the TTL lives in the row.
"""

from __future__ import annotations

from ..base import Lock
from .connection import PostgresAdapter
from .schema import LEASE_LOCK_SPACE

# Sent together with each statement below in one query string: one round trip, one implicit
# transaction; the statement after it gets a fresh snapshot (READ COMMITTED).
SERIALIZE = "SELECT pg_advisory_xact_lock(%(space)s, hashtext(%(scope)s || %(key)s));\n"

ACQUIRE = SERIALIZE + """/* oqron:lock_acquire */
INSERT INTO oqron_locks AS l (scope, key, owner, expires_at, epoch)
VALUES (%(scope)s, %(key)s, %(owner)s, clock_timestamp() + make_interval(secs => %(ttl)s), 1)
ON CONFLICT (scope, key) DO UPDATE SET
    owner = EXCLUDED.owner,
    expires_at = EXCLUDED.expires_at,
    epoch = l.epoch + CASE WHEN l.owner = EXCLUDED.owner AND l.expires_at > clock_timestamp()
                           THEN 0 ELSE 1 END
WHERE l.owner IS NULL OR l.expires_at <= clock_timestamp() OR l.owner = EXCLUDED.owner
RETURNING epoch"""

RENEW = SERIALIZE + """/* oqron:lock_renew */
UPDATE oqron_locks SET expires_at = clock_timestamp() + make_interval(secs => %(ttl)s)
WHERE scope = %(scope)s AND key = %(key)s AND owner = %(owner)s AND expires_at > clock_timestamp()
RETURNING 1"""

# The row stays: it keeps the epoch, which must never go back.
RELEASE = SERIALIZE + """/* oqron:lock_release */
UPDATE oqron_locks SET owner = NULL, expires_at = NULL
WHERE scope = %(scope)s AND key = %(key)s AND owner = %(owner)s AND expires_at > clock_timestamp()
RETURNING 1"""


class PostgresLock(PostgresAdapter, Lock):
    """Named locks with TTL, owner and fencing epoch (see the module docstring)."""

    def _params(self, key: str, owner: str | None = None, ttl: float = 0.0) -> dict[str, object]:
        return {"space": LEASE_LOCK_SPACE, "scope": self.scope, "key": key, "owner": owner,
                "ttl": float(ttl)}

    def acquire(self, key: str, owner: str, ttl: float) -> int | None:
        row = self.one(ACQUIRE, self._params(key, owner, ttl))
        return int(row[0]) if row else None

    def renew(self, key: str, owner: str, ttl: float) -> bool:
        return bool(self.query(RENEW, self._params(key, owner, ttl)))

    def release(self, key: str, owner: str) -> bool:
        return bool(self.query(RELEASE, self._params(key, owner)))

    def owner(self, key: str) -> str | None:
        row = self.one(
            "SELECT owner FROM oqron_locks "
            "WHERE scope = %s AND key = %s AND expires_at > clock_timestamp()",
            (self.scope, key),
        )
        return row[0] if row else None

    def epoch(self, key: str) -> int:
        row = self.one("SELECT epoch FROM oqron_locks WHERE scope = %s AND key = %s", (self.scope, key))
        return int(row[0]) if row else 0
