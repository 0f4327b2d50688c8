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

import os
from typing import Any

import orjson

MAX_LINE = 3000


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
