"""Small type checks shared by every validator (``bool`` is an ``int`` in Python, never a number here)."""

from __future__ import annotations

import math
from typing import Any


def is_int(value: Any, minimum: int | None = None) -> bool:
    ok = isinstance(value, int) and not isinstance(value, bool)
    return ok and (minimum is None or value >= minimum)


def is_seconds(value: Any, positive: bool = False) -> bool:
    """A finite number of seconds, >= 0 (or > 0 when ``positive``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return False
    return value > 0 if positive else value >= 0
