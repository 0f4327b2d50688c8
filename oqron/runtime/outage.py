"""Riding out a backend that went away: back off between attempts, and say so once.

Each duty that talks to a backend (a child's claims, the master's lease renewal, the leader's
scans, ...) keeps one ``Outage``. The first failure logs one warning; later failures log at
debug level, with a reminder every minute; the first success after failures logs that the
backend is back and how long it was away. Between attempts the duty waits ``delay()``: capped
exponential backoff with jitter, so that many processes reconnecting to a restarted server do
not all knock at the same moment.
"""

from __future__ import annotations

import logging
import random
import time

#: First and longest pause between attempts, in seconds.
BACKOFF_BASE = 0.1
BACKOFF_CAP = 2.0
#: While the backend stays away, repeat the warning this often (seconds).
REMIND_EVERY = 60.0


class Outage:
    def __init__(
        self, duty: str, logger: logging.Logger, base: float = BACKOFF_BASE, cap: float = BACKOFF_CAP
    ) -> None:
        self.duty = duty
        self.log = logger
        self.base = base
        self.cap = cap
        self.failures = 0
        self.since = 0.0
        self.reminded = 0.0

    @property
    def down(self) -> bool:
        return self.failures > 0

    def failed(self, exc: BaseException) -> float:
        """Note a failed attempt; returns how long to wait before the next one."""
        now = time.monotonic()
        self.failures += 1
        if self.failures == 1:
            self.since = self.reminded = now
            self.log.warning("%s: backend unavailable, retrying with backoff: %s", self.duty, exc)
        elif now - self.reminded >= REMIND_EVERY:
            self.reminded = now
            away = now - self.since
            self.log.warning("%s: backend still unavailable after %.0f s: %s", self.duty, away, exc)
        else:
            self.log.debug("%s: backend unavailable (attempt %d): %s", self.duty, self.failures, exc)
        return self.delay()

    def delay(self) -> float:
        if not self.failures:
            return 0.0
        nominal = min(self.cap, self.base * 2.0 ** min(self.failures - 1, 30))
        return nominal * random.uniform(0.5, 1.0)

    def recovered(self) -> None:
        """Note a successful attempt; logs the end of the outage if there was one."""
        if self.failures:
            away = time.monotonic() - self.since
            self.log.info("%s: backend reachable again after %.1f s", self.duty, away)
            self.failures = 0
