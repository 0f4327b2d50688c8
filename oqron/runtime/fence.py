"""A counter in memory shared by the master and one child, to hand back held jobs safely.

A child takes several short jobs at once and runs them one after another; when one runs long,
the master hands the others to free children. The master only knows what the child last said
over the pipe, which can be late: the child may already be starting the next job. So the two
sides order their steps around this counter:

    master: bump the counter → read the child's messages → hand back the jobs still listed held
    child:  say "start" for a held job → read the counter → run the job only if it has not moved
            since the child took the batch (otherwise hand back everything it holds itself)

If the child read the old value, its "start" was written before the master bumped, so the master
reads it and does not hand that job back. Pipe writes and reads are system calls, which order
the memory accesses around them.
"""

from __future__ import annotations

import mmap
import struct

_COUNTER = struct.Struct("=Q")


class HandBackFence:
    def __init__(self) -> None:
        self._memory = mmap.mmap(-1, _COUNTER.size)  # anonymous and shared: survives fork

    def read(self) -> int:
        return int(_COUNTER.unpack_from(self._memory)[0])

    def bump(self) -> None:
        """Master only: the child's batches taken before now may be handed back."""
        _COUNTER.pack_into(self._memory, 0, self.read() + 1)

    def close(self) -> None:
        self._memory.close()
