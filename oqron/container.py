"""The container: the three adapters of this process, built from the config, behind the prefix.

``Container.get()`` returns the current container, creating it from ``load_config()`` on first
use so that a script can ``queue(...).add(...)`` without ceremony. ``OqronKit.init`` replaces it
with an explicit config; children call ``after_fork()`` to drop inherited connections.
"""

from __future__ import annotations

import threading
from typing import ClassVar

from .adapters import Broker, Lock, Storage, build_broker, build_lock, build_storage
from .config import Config, load_config
from .lifecycle import Lifecycle


class Container:
    _current: ClassVar[Container | None] = None
    _guard: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, config: Config) -> None:
        self.config = config
        self.storage: Storage = build_storage(config.storage, config.prefix)
        self.broker: Broker = build_broker(config.broker, config.prefix)
        self.lock: Lock = build_lock(config.lock, config.prefix)
        self.lifecycle = Lifecycle(self.storage, self.broker, config)

    @classmethod
    def get(cls) -> Container:
        current = cls._current
        if current is None:
            with cls._guard:
                if cls._current is None:
                    cls._current = Container(load_config())
                current = cls._current
        return current

    @classmethod
    def init(cls, config: Config) -> Container:
        """Make a container for ``config`` the current one (closing the previous)."""
        with cls._guard:
            if cls._current is not None:
                cls._current.close()
            cls._current = Container(config)
            return cls._current

    @classmethod
    def reset(cls) -> None:
        with cls._guard:
            if cls._current is not None:
                cls._current.close()
            cls._current = None

    def after_fork(self) -> None:
        for adapter in (self.storage, self.broker, self.lock):
            adapter.reset_after_fork()

    def close(self) -> None:
        for adapter in (self.storage, self.broker, self.lock):
            adapter.close()
