"""SQLite adapters: the embedded default, shared by the processes of one machine with no server.

URLs: ``sqlite:///relative/path.db`` (relative to the working directory) or
``sqlite:////absolute/path.db``. Storage, broker and lock may name the same file. Beside it,
SQLite keeps ``-wal`` and ``-shm`` files and oqron a ``-oqron`` directory: the write gate
(``connection``) and the doorbells that wake blocked claims across processes (``wakeup``).
"""

from .broker import SqliteBroker
from .connection import parse_url
from .lock import SqliteLock
from .storage import SqliteStorage

__all__ = ["SqliteBroker", "SqliteLock", "SqliteStorage", "parse_url"]
