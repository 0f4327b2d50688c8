"""The master dates a child's job from the child's own reading of the clock: it reads messages
up to a window late (messages.open_pipe), and a hard timeout or the hand-back of held jobs
must not stretch by that much."""

from __future__ import annotations

import os
import time

from oqron.runtime import messages
from oqron.runtime.master import _started


def test_a_start_is_dated_by_the_child() -> None:
    at = time.monotonic() - messages.LONGEST_WINDOW
    assert _started({"t": "start", "at": at}) == at


def test_a_start_dated_in_the_future_counts_from_now() -> None:
    before = time.monotonic()
    started = _started({"t": "start", "at": before + 3600})
    assert before <= started <= time.monotonic()


def test_a_start_without_a_usable_date_counts_from_now() -> None:
    for message in ({"t": "start"}, {"t": "start", "at": "soon"}, {"t": "start", "at": None}):
        before = time.monotonic()
        assert before <= _started(message) <= time.monotonic()


def test_the_pipe_takes_two_windows_of_a_busy_pools_messages_unread() -> None:
    """Children never wait on the master: what a busy pool writes while the master leaves the
    pipe unread for two windows fits in it (a write to a full pipe would block them)."""
    read_end, write_end, window = messages.open_pipe()
    try:
        os.set_blocking(write_end, False)
        line = b'{"t":"start","pid":4242,"q":"queue","id":"' + b"f" * 32 + b'","tok":"123456"}' + b"\n"
        for _ in range(int(2 * window * messages.BUSY_POOL_BYTES_PER_S) // len(line)):
            os.write(write_end, line)  # BlockingIOError if the pipe is full
    finally:
        os.close(read_end)
        os.close(write_end)
    assert window > 0
