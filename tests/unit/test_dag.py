"""Job dependencies on the memory adapters."""

from __future__ import annotations

import pytest

from oqron import Container, DependencyNotFound, Retries, Runner, queue


@pytest.fixture
def steps(kit: Container):  # type: ignore[no-untyped-def]
    q = queue("steps", retries=Retries(max=0))

    @q.handler
    def run(ctx):  # type: ignore[no-untyped-def]
        if ctx.data.get("fail"):
            raise RuntimeError("step failed")
        parents = [v["name"] for v in ctx.parent_results().values() if v]
        return {"name": ctx.data["name"], "parents": sorted(parents)}

    return q


def test_diamond(steps) -> None:  # type: ignore[no-untyped-def]
    top = steps.add({"name": "top"})
    left = steps.add({"name": "left"}, depends_on=[top.id])
    right = steps.add({"name": "right"}, depends_on=[top])
    bottom = steps.add({"name": "bottom"}, depends_on=[left.id, right.id])
    assert bottom.status == "waiting-children"
    Runner().run_until_empty(raise_errors=True)
    assert bottom.refresh().status == "completed"
    assert bottom.return_value == {"name": "bottom", "parents": ["left", "right"]}
    started = [j.refresh().started_at for j in (top, left, right, bottom)]
    assert started[0] <= min(started[1:3]) and max(started[1:3]) <= started[3]


def test_missing_parent_is_refused(steps) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(DependencyNotFound, match="nope"):
        steps.add({"name": "x"}, depends_on=["nope"])
    assert steps.count() == 0


def test_parent_already_completed(steps) -> None:  # type: ignore[no-untyped-def]
    parent = steps.add({"name": "p"})
    Runner().run_until_empty()
    child = steps.add({"name": "c"}, depends_on=[parent.id])
    assert child.refresh().status == "waiting"
    Runner().run_until_empty()
    assert child.refresh().status == "completed"


def test_child_added_while_parent_runs_is_not_lost(kit: Container) -> None:
    q = queue("q")
    added = {}

    @q.handler
    def run(ctx):  # type: ignore[no-untyped-def]
        if ctx.data["role"] == "parent":
            added["child"] = q.add({"role": "child"}, depends_on=[ctx.id])
        return ctx.data["role"]

    q.add({"role": "parent"})
    Runner().run_until_empty(raise_errors=True)
    assert added["child"].refresh().status == "completed"


@pytest.mark.parametrize(("policy", "expected"), [("cascade-fail", "failed"), ("ignore", "completed"),
                                                  ("block", "waiting-children")])
def test_parent_failure_policies(steps, policy: str, expected: str) -> None:  # type: ignore[no-untyped-def]
    parent = steps.add({"name": "p", "fail": True})
    child = steps.add({"name": "c"}, depends_on=[parent.id], on_parent_failure=policy)
    grandchild = steps.add({"name": "g"}, depends_on=[child.id])
    Runner().run_until_empty()
    assert child.refresh().status == expected
    if policy == "cascade-fail":
        assert child.error["type"] == "ParentFailed"
        assert grandchild.refresh().status == "failed"


def test_cancelled_parent_fails_its_children(steps) -> None:  # type: ignore[no-untyped-def]
    parent = steps.add({"name": "p"}, delay=60)
    child = steps.add({"name": "c"}, depends_on=[parent.id])
    parent.cancel()
    assert child.refresh().status == "failed"
