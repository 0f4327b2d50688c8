"""Waiting for a reply by polling the socket for a moment before sleeping on it.

A producer's add is one round trip: it sends the call and sleeps in ``recv`` until Redis
answers. On a virtual machine, waking a process that sleeps on a socket goes through the
hypervisor and takes ~30 us, about as long as Redis takes to run the add; measured on the
benchmark VM, a loopback round trip of a one-argument command takes 54 us sleeping and 22 us
polling, for the same CPU (the sleep and the wake-up cost the kernel what the polls do). So
the producer polls for up to ``reply_poll`` seconds (default 200 us) and only then sleeps. A
longer wait is paid in CPU: an add keeps the producer busy until its reply (one by one, 134 ->
92 us per add, for 66 -> 92 us of the producer's CPU).

A poll can run out of time by chance (measured: one add in a few hundred, Redis busy with
something else), or because the server is farther away than that (another host, a loaded
one). So each poll that runs out of time in a row doubles the number of replies waited for by
sleeping before the next poll, up to ``MAX_PAUSE``: a far server costs one poll's CPU once in
a while rather than on every add, and a chance delay costs one reply's polling.
"""

from __future__ import annotations

import select
import socket
import time
from typing import Any

#: Most replies waited for by sleeping between two polls that run out of time.
MAX_PAUSE = 64


class ReplyPoller:
    """Polls one socket for readable data."""

    __slots__ = ("_poll", "misses", "paused", "sock")

    def __init__(self, sock: socket.socket, poll: Any) -> None:
        self.sock = sock
        poller = poll()
        poller.register(sock, select.POLLIN)
        self._poll = poller.poll
        self.paused = 0  # replies left to wait for by sleeping
        self.misses = 0  # polls in a row that ran out of time

    def wait(self, budget: float) -> bool:
        """Whether data came within ``budget`` seconds (False at once while paused)."""
        if self.paused:
            self.paused -= 1
            return False
        poll, clock = self._poll, time.perf_counter
        deadline = clock() + budget
        while not poll(0):
            if clock() >= deadline:
                self.paused = min(MAX_PAUSE, 2**self.misses - 1)
                self.misses += 1
                return False
        self.misses = 0
        return True


def poll_reply(connection: Any, budget: float) -> None:
    """Poll ``connection``'s socket (redis-py's, private) for up to ``budget`` seconds before
    the caller's blocking read. Only plain sockets: TLS holds decrypted data the socket's
    readiness does not show, and where ``select.poll`` is gone (gevent's monkey-patching),
    polling would hold up the event loop."""
    poll = getattr(select, "poll", None)
    sock = getattr(connection, "_sock", None)
    if budget <= 0 or poll is None or sock.__class__ is not socket.socket:
        return
    poller = getattr(connection, "_oqron_reply_poller", None)
    if poller is None or poller.sock is not sock:  # first wait, or reconnected since
        poller = ReplyPoller(sock, poll)
        connection._oqron_reply_poller = poller
    poller.wait(budget)
