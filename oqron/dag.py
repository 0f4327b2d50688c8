"""Job dependencies: a job added with ``depends_on`` waits in ``waiting-children`` until its
parents are done, then becomes ``waiting`` exactly once.

Linking and finishing race safely: the child's id is appended to each parent (atomic), then the
child re-reads its parents; a parent re-reads its children after its final write. Whichever of
the two comes second sees the other's write, and the promotion itself is a compare-and-set on
the child's status, so it happens once.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .job import CANCELLED, COMPLETED, FAILED, WAITING, WAITING_CHILDREN, transition

if TYPE_CHECKING:
    from .lifecycle import Lifecycle

POLICIES = ("cascade-fail", "ignore", "block")


def link(lifecycle: Lifecycle, child_id: str, parent_ids: Sequence[str]) -> None:
    for parent_id in parent_ids:
        lifecycle.storage.update_job(parent_id, {}, append={"children_ids": [child_id]})
    resolve(lifecycle, child_id)


def parent_finished(lifecycle: Lifecycle, parent: Mapping[str, Any]) -> None:
    """Called after a parent's final write; re-reads its children, which may have been linked
    while it ran."""
    fresh = lifecycle.storage.get_job(parent["id"])
    children_of_finished(lifecycle, (fresh or parent).get("children_ids") or [])


def children_of_finished(lifecycle: Lifecycle, children: Sequence[str]) -> None:
    """Resolve the children of a parent whose final write returned them (read atomically with
    that write, so a child linked while the parent ran is among them)."""
    for child_id in children:
        resolve(lifecycle, child_id)


def resolve(lifecycle: Lifecycle, child_id: str) -> None:
    storage = lifecycle.storage
    child = storage.get_job(child_id)
    if child is None or child["status"] != WAITING_CHILDREN:
        return
    parent_ids = child.get("parent_ids") or []
    parents = storage.get_jobs(parent_ids)
    policy = (child.get("options") or {}).get("on_parent_failure", "cascade-fail")
    failed = [
        pid
        for pid, p in zip(parent_ids, parents, strict=True)
        if p is None or p["status"] in (FAILED, CANCELLED)
    ]
    if failed and policy == "cascade-fail":
        _cascade_fail(lifecycle, child, failed[0])
        return
    if failed and policy == "block":
        return
    if all(p is None or p["status"] in (COMPLETED, FAILED, CANCELLED) for p in parents):
        now = time.time()
        changes = {"status": WAITING, "queued_at": now}
        entry = transition(WAITING_CHILDREN, WAITING, "parents done", now)
        if storage.update_job(
            child_id, changes, expect_status=[WAITING_CHILDREN], append={"timeline": [entry]}
        ):
            lifecycle.publish_waiting(child)


def _cascade_fail(lifecycle: Lifecycle, child: Mapping[str, Any], parent_id: str) -> None:
    now = time.time()
    message = f"parent job {parent_id} failed or was cancelled"
    changes = {
        "status": FAILED,
        "finished_at": now,
        "error": {"type": "ParentFailed", "message": message},
    }
    entry = transition(WAITING_CHILDREN, FAILED, message, now)
    if lifecycle.storage.update_job(
        child["id"], changes, expect_status=[WAITING_CHILDREN], append={"timeline": [entry]}
    ):
        parent_finished(lifecycle, {**child, **changes})
