"""Doorbells: how a claim blocked in one process is woken by a publish in another, without polling.

A claim that has to wait binds a UNIX datagram socket (its bell) in a directory next to the
database, ``{db}-oqron/bells/{digest of the prefix}/``, and sleeps in ``recv`` on it: no CPU at all.
Whoever makes a job claimable (publish, nack, resume) commits first, then lists that directory
and sends one byte to every bell, without blocking. The waiter wakes within microseconds and
retries its claim; the bell is closed and its file removed when the claim returns.

No wake-up is lost: a waiter binds its bell before its last look at the database, a ringer
lists the directory after its commit, so either the look sees the job or the ring finds the
bell. A waiter killed while waiting leaves its socket file behind; ringing it fails with
ECONNREFUSED and the ringer deletes it. A full bell (EAGAIN) already has a ring pending.

Alternatives considered: inotify on the WAL file wakes every waiter on every write (acks,
progress updates, renewals), needs ctypes, and the WAL is truncated and restarted by
checkpoints; FIFOs block or fail on open when no reader is present, and a dead reader's FIFO
looks like a live one. Datagram sockets fail fast and precisely instead.

``sun_path`` holds at most 108 bytes; a deeper directory is reached through
``/proc/self/fd/{directory fd}/{name}`` (Linux).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import secrets
import socket

log = logging.getLogger("oqron.sqlite")

#: Longest socket path used as is (sun_path is 108 bytes including the terminating NUL).
MAX_SOCKET_PATH = 100


class Bell:
    """One waiter's socket: ``wait`` sleeps until a ring (or the timeout), ``close`` removes it."""

    def __init__(self, sock: socket.socket, path: str) -> None:
        self._sock = sock
        self._path = path

    def wait(self, timeout: float) -> bool:
        """Sleep until rung or ``timeout`` seconds pass; True if rung. Pending rings are
        consumed, so one publish burst wakes a waiter once."""
        self._sock.settimeout(max(timeout, 1e-6))  # 0 would mean non-blocking, not "no wait"
        try:
            self._sock.recv(16)
        except TimeoutError:
            return False
        self._sock.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            while self._sock.recv(16):
                pass
        return True

    def close(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._path)  # first, so that no ringer finds a closed socket
        self._sock.close()


class Doorbells:
    """The bells of one prefix in one database: ``listen`` makes a bell, ``ring`` rings all."""

    def __init__(self, sidecar: str, scope: str) -> None:
        digest = hashlib.sha256(scope.encode()).hexdigest()[:16]
        self.directory = os.path.join(sidecar, "bells", digest)
        self._pid = -1
        self._dir_fd = -1
        self._sender: socket.socket | None = None
        self._warned = False

    def _ready(self, again: bool = False) -> socket.socket:
        """This process's directory handle and sending socket (made again after a fork)."""
        if again or self._sender is None or self._pid != os.getpid():
            self.close()
            os.makedirs(self.directory, exist_ok=True)
            self._dir_fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            self._sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._pid = os.getpid()
        return self._sender

    def _address(self, name: str) -> str:
        """What to bind or send to: the path itself, or a short alias when it is too long."""
        path = os.path.join(self.directory, name)
        if len(os.fsencode(path)) <= MAX_SOCKET_PATH:
            return path
        return f"/proc/self/fd/{self._dir_fd}/{name}"

    def listen(self) -> Bell:
        """A new bell, registered (rings reach it) as soon as this returns."""
        name = f"{os.getpid()}-{secrets.token_hex(6)}"
        for again in (False, True):
            self._ready(again)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            try:
                sock.bind(self._address(name))
                return Bell(sock, os.path.join(self.directory, name))
            except FileNotFoundError:
                sock.close()  # the directory was removed under us: make it again, once
                if again:
                    raise
            except BaseException:
                sock.close()
                raise
        raise AssertionError("unreachable")

    def ring(self) -> None:
        """Wake every waiting claim of this prefix (call after the commit that made work).

        Never raises: the work is committed already, and a waiter that misses a ring still
        looks again within the broker's ``SAFETY_WAIT``. A failure is logged once per process.
        """
        try:
            sender = self._ready()
            names = os.listdir(self._dir_fd)
        except OSError as exc:
            self._warn(exc)
            return
        for name in names:
            try:
                sender.sendto(b"!", socket.MSG_DONTWAIT, self._address(name))
            except BlockingIOError:
                pass  # the bell is full: a ring is already pending there
            except (ConnectionRefusedError, FileNotFoundError):
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(self.directory, name))  # its waiter died
            except OSError as exc:
                self._warn(exc)

    def _warn(self, exc: OSError) -> None:
        if not self._warned:
            self._warned = True
            log.warning("cannot ring the doorbells in %s (%s): blocked claims will wake late",
                        self.directory, exc)

    def close(self) -> None:
        """Release the handles (closing inherited copies after a fork does not touch the parent's)."""
        if self._sender is not None:
            self._sender.close()
            os.close(self._dir_fd)
        self._sender = None
        self._dir_fd = -1
