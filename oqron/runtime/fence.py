"""A counter in memory shared by the master and one child, to hand back held jobs safely.

A child takes several short jobs at once and runs them one after another, and asks for its next
batch with the first end of the current one (the batch "taken ahead"). When a job runs long,
the master hands the jobs behind it to free children. It only knows what the child last said
over the pipe, which can be late: the child may already be starting the next job. So the two
sides order their steps around this counter:

    master: read the newest lease token → bump the counter → read the child's messages →
            hand back the jobs the child's last "start" lists as held, and, if it says a batch
            was asked for ahead, the child's leases newer than those it knows of, up to the
            token read first
    child:  read the counter before sending a take → say "start" for a job → read the counter
            → run the job only if the counter has not moved since that take was sent
            (otherwise hand back everything it holds itself)

If the child read the unmoved value after its "start", that "start" was written before the
master bumped, so the master reads it and hands back neither that job nor the ones before it
(their tokens are older). A job the master hands back as taken ahead was taken before the
master bumped, so the child read the counter before the bump, and sees it moved. Pipe writes
and reads are system calls, which order the memory accesses around them.
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
