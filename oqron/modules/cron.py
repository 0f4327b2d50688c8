"""``cron()``: a handler that runs on a schedule — a cron expression or a fixed interval.

The leader does not run cron code. At each due tick it adds a job with the deterministic id
``cron:{name}:{tick}`` to the definition's queue (``cron.{name}`` unless ``queue=`` names
another), so a second leader, a restart or a replayed tick cannot create a second run; children
run it with the usual guarantees. The tick arithmetic lives here; the leader's loop that applies
it is ``oqron.runtime.scheduler``.
"""

from __future__ import annotations

import math
import random
import zoneinfo
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any, TypeVar

from croniter import croniter

from ..checks import is_int, is_seconds
from ..errors import DefinitionError
from ..job import Job
from .queue import Queue, queue

H = TypeVar("H", bound=Callable[..., Any])

MISSED_FIRE = ("skip", "run-once", "run-all")
#: A tick found later than this is "missed" and handled by the missed_fire policy.
MISFIRE_GRACE = 30.0
RUN_ALL_CAP = 100
EVERY_UNITS = {"seconds": 1, "minutes": 60, "hours": 3600, "days": 86400, "weeks": 604800}


class Cron:
    """A schedule bound to a queue: computes its ticks and adds one job per tick."""

    def __init__(
        self,
        name: str,
        expression: str | None = None,
        *,
        every: float | Mapping[str, float] | None = None,
        timezone: str = "UTC",
        missed_fire: str = "skip",
        overlap: bool = False,
        queue: str | None = None,
        jitter: float = 0.0,
        payload: Any = None,
        max_missed: int = RUN_ALL_CAP,
        **queue_options: Any,
    ) -> None:
        if (expression is None) == (every is None):
            raise DefinitionError(f"cron {name!r}: give exactly one of expression or every")
        self.name = name
        self.expression = _check_expression(name, expression) if expression is not None else None
        self.interval = _interval(name, every) if every is not None else None
        try:
            self.zone = zoneinfo.ZoneInfo(timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise DefinitionError(f"cron {name!r}: timezone: unknown IANA zone {timezone!r}") from None
        if missed_fire not in MISSED_FIRE:
            raise DefinitionError(f"cron {name!r}: missed_fire: expected one of {', '.join(MISSED_FIRE)}")
        if not is_seconds(jitter):
            raise DefinitionError(f"cron {name!r}: jitter: expected seconds >= 0, got {jitter!r}")
        if not is_int(max_missed, 1):
            raise DefinitionError(f"cron {name!r}: max_missed: expected an integer >= 1")
        self.timezone = timezone
        self.missed_fire = missed_fire
        self.overlap = overlap
        self.jitter = float(jitter)
        self.payload = payload
        self.max_missed = max_missed
        self.queue_name = queue or f"cron.{name}"
        self.queue_options = queue_options
        self.queue: Queue | None = None

    def __repr__(self) -> str:
        return f"<Cron {self.name} {self.expression or f'every {self.interval}s'}>"

    def next_after(self, moment: float) -> float:
        """The first tick strictly after ``moment`` (epoch seconds)."""
        if self.interval is not None:
            return (math.floor(moment / self.interval) + 1) * self.interval
        start = datetime.fromtimestamp(moment, tz=self.zone)
        assert self.expression is not None
        six_fields = len(self.expression.split()) == 6
        nxt = croniter(self.expression, start, second_at_beginning=six_fields).get_next(datetime)
        return float(nxt.astimezone(timezone.utc).timestamp())

    def due_ticks(self, next_at: float, now: float) -> tuple[list[float], float]:
        """Ticks to fire for the window [next_at, now] under the missed_fire policy, and the
        next tick after ``now``."""
        ticks: list[float] = []
        tick = next_at
        while tick <= now and len(ticks) < 10_000:
            ticks.append(tick)
            tick = self.next_after(tick)
        if tick <= now:  # a very long downtime: jump ahead instead of walking every tick
            tick = self.next_after(now)
        on_time = [t for t in ticks if now - t <= MISFIRE_GRACE]
        missed = [t for t in ticks if now - t > MISFIRE_GRACE]
        if self.missed_fire == "run-all":
            fire = (missed + on_time)[-self.max_missed :]
        elif self.missed_fire == "run-once" and missed and not on_time:
            fire = missed[-1:]
        else:
            fire = on_time
        return fire, tick

    def job_id(self, tick: float) -> str:
        return f"cron:{self.name}:{int(tick)}"

    def trigger(self, payload: Any = None) -> Job:
        """Run now, outside the schedule (a manual run; it does not move the schedule)."""
        assert self.queue is not None
        return self.queue.add(self.payload if payload is None else payload)

    def jitter_delay(self) -> float:
        return random.uniform(0, self.jitter) if self.jitter else 0.0


def _check_expression(name: str, expression: str) -> str:
    fields = expression.split()
    if len(fields) not in (5, 6) or not croniter.is_valid(expression, second_at_beginning=len(fields) == 6):
        raise DefinitionError(
            f"cron {name!r}: expression: expected 5 fields (minute hour day month weekday) or 6 "
            f"(with seconds first), got {expression!r}"
        )
    return expression


def _interval(name: str, every: float | Mapping[str, float]) -> float:
    if isinstance(every, Mapping):
        unknown = set(every) - set(EVERY_UNITS)
        if unknown or not every:
            keys = ", ".join(EVERY_UNITS)
            raise DefinitionError(f"cron {name!r}: every: use keys {keys}, got {dict(every)!r}")
        seconds = sum(EVERY_UNITS[unit] * value for unit, value in every.items() if is_seconds(value))
    else:
        seconds = every if is_seconds(every, positive=True) else 0
    if not seconds or seconds < 1:
        raise DefinitionError(f"cron {name!r}: every: expected an interval >= 1 second, got {every!r}")
    return float(seconds)


def cron(name: str, expression: str | None = None, **options: Any) -> Callable[[H], H]:
    """Decorator: run ``function(ctx)`` on a cron expression or ``every=`` interval."""
    from ..registry import registry

    definition = Cron(name, expression, **options)

    def register(function: H) -> H:
        definition.queue = queue(definition.queue_name, function, **definition.queue_options)
        registry.add_cron(definition)
        return function

    return register
