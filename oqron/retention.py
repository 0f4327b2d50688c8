"""Retention of finished jobs: ``remove_on_complete`` / ``remove_on_fail`` = True (delete now),
False (keep), N (keep the newest N of that queue and status) or ``{"age": s, "count": n}``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .adapters.base import Storage
from .checks import is_int, is_seconds
from .job import COMPLETED, FAILED

if TYPE_CHECKING:
    from .modules.queue import Queue


def check(name: str, value: Any) -> Any:
    """Validate a retention option; returns it unchanged."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int) and value >= 0:
        return value
    if isinstance(value, Mapping) and value and set(value) <= {"age", "count"}:
        age, count = value.get("age"), value.get("count")
        if (age is None or is_seconds(age)) and (count is None or is_int(count, 0)):
            return dict(value)
    raise ValueError(
        f"{name}: expected True, False, a count >= 0 or {{'age': seconds, 'count': n}}, got {value!r}"
    )


def apply(storage: Storage, record: Mapping[str, Any], queue: Queue | None) -> None:
    status = record["status"]
    if status not in (COMPLETED, FAILED):
        return
    option = "remove_on_complete" if status == COMPLETED else "remove_on_fail"
    rule = (record.get("options") or {}).get(option)
    if rule is None and queue is not None:
        rule = getattr(queue, option)
    if rule is None or rule is False:
        return
    if rule is True:
        storage.delete_jobs([record["id"]])
    elif isinstance(rule, int):
        storage.prune_jobs(record["queue"], status, keep=rule)
    else:
        storage.prune_jobs(record["queue"], status, keep=rule.get("count"), older_than=rule.get("age"))
