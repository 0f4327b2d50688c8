"""A private PostgreSQL cluster on a free port, which tests may stop and start again.

The machine's PostgreSQL must keep running for the rest of the suite, so a test that takes the
database away builds its own cluster with ``initdb`` and runs it with ``pg_ctl``. The server
refuses to run as root: when the tests run as root, both commands run as the ``postgres`` OS
user, in a directory that user owns. The data directory survives ``stop()``, so ``start()``
brings the same data back on the same port.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time

import psycopg2

from .ports import free_port

OS_USER = "postgres"


def find_bin_dir() -> str | None:
    """The newest installed PostgreSQL's bin directory that has initdb and pg_ctl."""
    candidates = [os.path.dirname(p) for p in glob.glob("/usr/lib/postgresql/*/bin/initdb")]
    found = shutil.which("initdb")
    if found:
        candidates.append(os.path.dirname(found))
    usable = [d for d in candidates if os.access(os.path.join(d, "pg_ctl"), os.X_OK)]
    return max(usable, key=_version, default=None)


def _version(bin_dir: str) -> float:
    try:
        return float(os.path.basename(os.path.dirname(bin_dir)))
    except ValueError:
        return 0.0


class PgCluster:
    def __init__(self, bin_dir: str) -> None:
        self.bin_dir = bin_dir
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="oqron-pg-")
        self.data = os.path.join(self.dir, "data")
        self.log = os.path.join(self.dir, "server.log")
        self.as_root = os.getuid() == 0
        if self.as_root:
            user = pwd.getpwnam(OS_USER)
            os.chown(self.dir, user.pw_uid, user.pw_gid)

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, timeout: float = 60) -> None:
        command = [os.path.join(self.bin_dir, args[0]), *args[1:]]
        if self.as_root:
            command = ["runuser", "-u", OS_USER, "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=self.dir)
        if result.returncode != 0:
            raise RuntimeError(f"{args[0]} failed ({result.returncode}): {result.stderr or result.stdout}")

    def init(self) -> PgCluster:
        self._run("initdb", "-D", self.data, "-U", "postgres", "-A", "trust", "--no-sync",
                  "--no-instructions", "-E", "UTF8", "--locale", "C")
        return self

    def start(self) -> PgCluster:
        options = (f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.dir}"
                   " -c fsync=off -c full_page_writes=off"
                   " -c max_connections=100 -c shared_buffers=16MB")
        self._run("pg_ctl", "start", "-D", self.data, "-l", self.log, "-w", "-t", "30", "-o", options)
        deadline = time.monotonic() + 30
        while True:  # pg_ctl -w waited for the socket; make sure TCP logins work too
            try:
                psycopg2.connect(self.url, connect_timeout=2).close()
                return self
            except psycopg2.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self, mode: str = "immediate") -> None:
        """Stop the server: ``immediate`` is a crash (no checkpoint; WAL replay on start), ``fast``
        a clean shutdown that disconnects every client."""
        self._run("pg_ctl", "stop", "-D", self.data, "-m", mode, "-w", "-t", "30")

    def close(self) -> None:
        try:
            self.stop()
        except (RuntimeError, subprocess.TimeoutExpired):
            pass
        shutil.rmtree(self.dir, ignore_errors=True)
