"""One Redis client per URL per process, Lua scripts loaded from the .lua files beside this module.

Clients are cached by URL so that storage, broker and lock on the same server share a
connection pool; the cache is keyed by pid, so a forked child never talks over its parent's
sockets. Connection failures surface as ``AdapterUnavailable``.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable
from importlib import resources
from typing import Any, TypeVar

import redis

from ...errors import AdapterUnavailable

F = TypeVar("F", bound=Callable[..., Any])

#: Forks of this process so far: cheaper to compare on every call than os.getpid() (a system call).
forks = [0]
os.register_at_fork(after_in_child=lambda: forks.__setitem__(0, forks[0] + 1))

#: Longest single blocking wait; the socket timeout must exceed it.
MAX_BLOCK = 5.0
_clients: dict[tuple[int, str, float | None, bool], redis.Redis] = {}

#: redis-py types replies as ``bytes | str`` whatever ``decode_responses`` says; our clients
#: always decode, so adapters use the client untyped rather than cast every reply.
Client = Any


def client_for(url: str, timeout: float | None = None, single: bool = False) -> Client:
    """The process's client for ``url``. ``timeout`` bounds connects and replies (Redlock wants
    a dead instance to cost milliseconds, not the default seconds); ``single`` gives a client
    that keeps one connection instead of checking one out of a pool for every command."""
    key = (os.getpid(), url, timeout, single)
    client = _clients.get(key)
    if client is None:
        for stale in [k for k in _clients if k[0] != key[0]]:
            del _clients[stale]  # inherited from the parent: never reuse its sockets
        client = redis.Redis.from_url(
            url,
            decode_responses=True,
            socket_timeout=timeout or MAX_BLOCK + 10.0,
            socket_connect_timeout=timeout or 5.0,
            socket_keepalive=True,
            health_check_interval=30,
            single_connection_client=single,
        )
        _clients[key] = client
    return client


def drop_clients() -> None:
    """Forget every cached client (after a fork, or to reconnect from scratch)."""
    _clients.clear()


#: A script's line naming a shared file to paste in before it (Redis scripts cannot import).
INCLUDE = re.compile(r"^--!include (\w+)\.lua[ \t]*$", re.MULTILINE)


@functools.cache
def script_text(name: str) -> str:
    """The text of ``scripts/<name>.lua`` as written."""
    return resources.files(__package__).joinpath("scripts", f"{name}.lua").read_text()


@functools.cache
def script_source(name: str) -> str:
    """A script's text with its ``--!include file.lua`` lines replaced by that file: Redis
    scripts cannot import, so shared functions are pasted in."""
    return INCLUDE.sub(lambda line: script_source(line.group(1)).rstrip("\n"), script_text(name))


class ScriptSet:
    """The Lua scripts of one adapter, registered on its client (EVALSHA, loaded on demand)."""

    def __init__(self, client: Client, names: tuple[str, ...]) -> None:
        self._scripts: dict[str, Any] = {
            name: client.register_script(script_source(name)) for name in names
        }

    def __getitem__(self, name: str) -> Any:
        return self._scripts[name]


def translate_errors(method: F) -> F:
    """Turn redis-py connection and timeout errors into ``AdapterUnavailable``."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise AdapterUnavailable(f"redis: {exc}") from exc

    return wrapper  # type: ignore[return-value]


class RedisAdapter:
    """Shared plumbing: the prefix, a lazily created client and the adapter's scripts."""

    scripts_used: tuple[str, ...] = ()

    def __init__(self, url: str, prefix: str, timeout: float | None = None) -> None:
        self.url = url
        self.prefix = prefix
        self.timeout = timeout
        self._pid = -1
        self._forks = -1
        self._client: Client | None = None
        self._scripts: ScriptSet | None = None

    @property
    def client(self) -> Client:
        if self._client is None or self._forks != forks[0]:  # first use, or forked since
            self._client = client_for(self.url, self.timeout)
            self._scripts = ScriptSet(self._client, self.scripts_used)
            self._pid, self._forks = os.getpid(), forks[0]
        return self._client

    @property
    def scripts(self) -> ScriptSet:
        self.client  # noqa: B018 - make sure client and scripts belong to this process
        assert self._scripts is not None
        return self._scripts

    def reset_after_fork(self) -> None:
        self._client = None
        self._scripts = None

    def close(self) -> None:
        if self._client is not None and self._pid == os.getpid():
            self._client.close()
            _clients.pop((self._pid, self.url, self.timeout, False), None)
        self._client = None
        self._scripts = None
