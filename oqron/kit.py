"""``OqronKit``: start and stop oqron in a process (producers, scripts, the master)."""

from __future__ import annotations

import importlib
from collections.abc import Iterable

from .config import Config, load_config
from .container import Container


class OqronKit:
    @staticmethod
    def init(config: Config | None = None, modules: Iterable[str] | None = None) -> Container:
        """Resolve the configuration (``config`` layered under ``OQRON_*``) and build the adapters.

        A push-only API server passes ``modules=["queue"]``.
        """
        overrides = {"modules": list(modules)} if modules is not None else None
        return Container.init(load_config(base=config, overrides=overrides))

    @staticmethod
    def stop() -> None:
        """Close every connection this process opened."""
        Container.reset()

    @staticmethod
    def import_triggers(config: Config) -> list[str]:
        """Import the modules that define queues (``triggers``; ``jobs`` by default if it
        exists). Returns the names imported."""
        names = list(config.triggers) if config.triggers is not None else []
        if config.triggers is None and importlib.util.find_spec("jobs") is not None:
            names = ["jobs"]
        for name in names:
            importlib.import_module(name)
        return names
