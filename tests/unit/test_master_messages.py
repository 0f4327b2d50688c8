"""The master dates a child's job from the child's own reading of the clock: it reads messages
up to a window late (master.MESSAGE_WINDOW), and a hard timeout or the hand-back of held jobs
must not stretch by that much."""

from __future__ import annotations

import time

from oqron.runtime.master import MESSAGE_WINDOW, _started


def test_a_start_is_dated_by_the_child() -> None:
    at = time.monotonic() - MESSAGE_WINDOW
    assert _started({"t": "start", "at": at}) == at


def test_a_start_dated_in_the_future_counts_from_now() -> None:
    before = time.monotonic()
    started = _started({"t": "start", "at": before + 3600})
    assert before <= started <= time.monotonic()


def test_a_start_without_a_usable_date_counts_from_now() -> None:
    for message in ({"t": "start"}, {"t": "start", "at": "soon"}, {"t": "start", "at": None}):
        before = time.monotonic()
        assert before <= _started(message) <= time.monotonic()
