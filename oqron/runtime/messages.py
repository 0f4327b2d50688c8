"""What children tell the master, over one shared pipe: one JSON line per message.

Lines stay far below PIPE_BUF, so concurrent writes from several children never interleave.
    ready  the child booted                      {"t": "ready", "pid": ...}
    start  the child runs a job (and is done    {"t": "start", "pid", "q", "id", "tok", "timeout",
           with the one before, if any); held    "held", "ahead", "at"}
           = lease tokens of the jobs it took
           with it and has not run yet; at = its
           time.monotonic() then (the clock is
           the machine's, shared by processes)
    done   the child is idle again               {"t": "done", "pid", "id"}
"""

from __future__ import annotations

import fcntl
import os
from typing import Any

import orjson

MAX_LINE = 3000
#: What a busy pool writes: 10,000 short jobs/s with a ~200-byte "start" line each.
BUSY_POOL_BYTES_PER_S = 2_000_000
#: The master reads the pipe at most this often (see ``open_pipe``), to save waking per message.
LONGEST_WINDOW = 0.1
#: The pipe capacity asked for: Linux lets any process raise a pipe to 1 MiB (fs/pipe-max-size).
PIPE_SIZE = 1 << 20
DEFAULT_PIPE_SIZE = 65536


def open_pipe() -> tuple[int, int, float]:
    """The message pipe (read end, write end), and how long the master may leave it unread: a
    full pipe makes every child wait in its next write, so a busy pool's lines over two windows
    must fit (at 0.1 s and the default 64 KiB, children ran 3,200 no-op jobs/s instead of
    10,000). Where the pipe cannot be enlarged, the window shrinks instead."""
    read_end, write_end = os.pipe()
    size = DEFAULT_PIPE_SIZE
    set_size = getattr(fcntl, "F_SETPIPE_SZ", None)
    if set_size is not None:
        try:
            size = fcntl.fcntl(write_end, set_size, PIPE_SIZE)
        except OSError:  # a lower system limit: the default size
            pass
    return read_end, write_end, min(LONGEST_WINDOW, size / (2 * BUSY_POOL_BYTES_PER_S))


def send(fd: int, message: dict[str, Any]) -> None:
    line = orjson.dumps(message)
    if len(line) >= MAX_LINE:
        raise ValueError("message too long for an atomic pipe write")
    os.write(fd, line + b"\n")


class Reader:
    """Splits the bytes read from the non-blocking pipe into messages."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._buffer = b""

    def read(self) -> list[dict[str, Any]]:
        chunks = []
        while True:
            try:
                chunk = os.read(self.fd, 65536)
            except BlockingIOError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        if not chunks:
            return []
        data = self._buffer + b"".join(chunks)
        lines = data.split(b"\n")
        self._buffer = lines.pop()
        return [orjson.loads(line) for line in lines if line]
