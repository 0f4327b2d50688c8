"""Adapters behind URLs: ``memory://``, ``sqlite:///path``, ``redis://``, ``postgresql://``.

``build_*`` turn a URL and the isolation prefix into an adapter; switching URLs changes no job
code. Backends whose client library is missing or not built yet raise ``ConfigError``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar
from urllib.parse import urlsplit, urlunsplit

from ..errors import ConfigError
from .base import Broker, Lease, Lock, Storage

__all__ = ["Broker", "Lease", "Lock", "Storage", "build_broker", "build_lock", "build_storage", "shown_url"]

A = TypeVar("A")


def _scheme(url: str) -> str:
    scheme = url.split("://", 1)[0].lower()
    return {"rediss": "redis", "unix": "redis", "postgres": "postgresql"}.get(scheme, scheme)


def shown_url(url: str) -> str:
    """The URL as it may appear in a message or a log: a password is replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    netloc = f"{parts.username or ''}:***@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _build(kind: str, url: str, prefix: str, makers: dict[str, Callable[[str, str], A]]) -> A:
    scheme = _scheme(url)
    maker = makers.get(scheme)
    if maker is None:
        raise ConfigError(kind, f"no {kind} adapter for {scheme}:// yet; available: "
                          + ", ".join(f"{s}://" for s in sorted(makers)))
    return maker(url, prefix)


def build_storage(url: str, prefix: str) -> Storage:
    from .memory import MemoryStorage
    from .postgres import PostgresStorage
    from .redis import RedisStorage
    from .sqlite import SqliteStorage

    makers: dict[str, Callable[[str, str], Storage]] = {
        "memory": lambda url, prefix: MemoryStorage(prefix),
        "redis": RedisStorage,
        "sqlite": SqliteStorage,
        "postgresql": PostgresStorage,
    }
    return _build("storage", url, prefix, makers)


def build_broker(url: str, prefix: str) -> Broker:
    from .memory import MemoryBroker
    from .postgres import PostgresBroker
    from .redis import RedisBroker
    from .sqlite import SqliteBroker

    makers: dict[str, Callable[[str, str], Broker]] = {
        "memory": lambda url, prefix: MemoryBroker(prefix),
        "redis": RedisBroker,
        "sqlite": SqliteBroker,
        "postgresql": PostgresBroker,
    }
    return _build("broker", url, prefix, makers)


def build_lock(url: str, prefix: str) -> Lock:
    """One URL, or several comma-separated Redis URLs for Redlock over independent servers."""
    urls = [part.strip() for part in url.split(",") if part.strip()]
    if len(urls) > 1:
        from .redis.redlock import RedlockLock

        if any(_scheme(u) != "redis" for u in urls) or len(urls) < 3:
            raise ConfigError("lock", "several lock URLs mean Redlock: give 3 or more redis:// URLs")
        return RedlockLock(urls, prefix)
    from .memory import MemoryLock
    from .postgres import PostgresLock
    from .redis import RedisLock
    from .sqlite import SqliteLock

    makers: dict[str, Callable[[str, str], Lock]] = {
        "memory": lambda url, prefix: MemoryLock(prefix),
        "redis": RedisLock,
        "sqlite": SqliteLock,
        "postgresql": PostgresLock,
    }
    return _build("lock", url, prefix, makers)
