"""The definitions a process knows: queues (with or without a handler), later cron and schedules.

Importing the user's jobs module fills it; the master imports once before forking, so every
child inherits the same definitions. ``clear()`` lets a reload (HUP) import them afresh.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import DefinitionError

if TYPE_CHECKING:
    from .modules.cron import Cron
    from .modules.queue import Queue


class Registry:
    def __init__(self) -> None:
        self.queues: dict[str, Queue] = {}
        self.crons: dict[str, Cron] = {}

    def add_cron(self, cron: Cron) -> Cron:
        if cron.name in self.crons:
            raise DefinitionError(f"cron {cron.name!r} is already defined")
        self.crons[cron.name] = cron
        return cron

    def add_queue(self, queue: Queue) -> Queue:
        """Register ``queue``; a second definition of the same name must agree with the first
        (same options), and may bring the handler the first lacked."""
        existing = self.queues.get(queue.name)
        if existing is None:
            self.queues[queue.name] = queue
            return queue
        if existing.options() != queue.options():
            raise DefinitionError(
                f"queue {queue.name!r} is already defined with other options: "
                f"{existing.options()} vs {queue.options()}"
            )
        if queue.function is not None:
            if existing.function is not None and existing.function is not queue.function:
                if _qualname(existing.function) != _qualname(queue.function):
                    raise DefinitionError(
                        f"queue {queue.name!r} already has handler {_qualname(existing.function)}"
                    )
            existing.function = queue.function
        return existing

    def handled(self) -> list[str]:
        """Names of the queues that have a handler in this process."""
        return sorted(name for name, q in self.queues.items() if q.function is not None)

    def clear(self) -> None:
        self.queues.clear()
        self.crons.clear()


def _qualname(fn: object) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"


registry = Registry()
