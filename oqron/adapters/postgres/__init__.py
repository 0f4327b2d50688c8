"""PostgreSQL adapters: records in JSONB, queues claimed with SKIP LOCKED, LISTEN/NOTIFY wake-ups,
locks as leases serialised by advisory locks. Schema created and migrated by oqron."""

from .broker import PostgresBroker
from .lock import PostgresLock
from .storage import PostgresStorage

__all__ = ["PostgresBroker", "PostgresLock", "PostgresStorage"]
