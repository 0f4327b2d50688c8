"""Redis adapters: records in hashes, queues in sorted sets, atomic steps in Lua scripts."""

from .broker import RedisBroker
from .lock import RedisLock
from .storage import RedisStorage

__all__ = ["RedisBroker", "RedisLock", "RedisStorage"]
