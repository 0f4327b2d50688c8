"""What the orchestrator provides: a private Redis, a scratch PostgreSQL database, the peers'
venv, and a description of the machine."""

from __future__ import annotations

import os
import platform
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from .procs import ancestors, parent_map

HERE = Path(__file__).resolve().parent
PEERS_VENV = HERE / ".venv-peers"
PEER_PACKAGES = ["celery[redis]", "rq", "dramatiq[redis]", "huey", "redis", "hiredis"]
PG_SERVER = os.environ.get("OQRON_TEST_PG") or "postgresql://postgres@127.0.0.1:5432/postgres"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PrivateRedis:
    """``redis-server`` on a free port, no persistence, in its own session."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
        self.binary = binary
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="oqron-bench-redis-")
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> PrivateRedis:
        import redis

        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.dir, "--maxclients", "4000"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not start on port {self.port}") from None
                time.sleep(0.02)
        client.close()
        return self

    def version(self) -> str:
        import redis

        client = redis.Redis(port=self.port)
        try:
            return str(client.info("server")["redis_version"])
        finally:
            client.close()

    def flush(self) -> None:
        import redis

        client = redis.Redis(port=self.port)
        try:
            client.flushall()
        finally:
            client.close()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.process = None
        shutil.rmtree(self.dir, ignore_errors=True)


class ScratchPostgres:
    """A database ``oqron_bench_<random>`` on the machine's PostgreSQL, dropped by ``drop()``."""

    def __init__(self, server: str = PG_SERVER) -> None:
        self.server = server
        self.name = f"oqron_bench_{secrets.token_hex(4)}"
        parts = urlsplit(server)
        self.url = urlunsplit((parts.scheme, parts.netloc, "/" + self.name, parts.query, parts.fragment))

    def _execute(self, sql: str) -> None:
        import psycopg2

        conn = psycopg2.connect(self.server, connect_timeout=5)
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
        finally:
            conn.close()

    def create(self) -> ScratchPostgres:
        self._execute(f'CREATE DATABASE "{self.name}"')
        return self

    def drop(self) -> None:
        self._execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')

    def version(self) -> str:
        import psycopg2

        conn = psycopg2.connect(self.server, connect_timeout=5)
        try:
            with conn.cursor() as cur:
                cur.execute("SHOW server_version")
                return str(cur.fetchone()[0])
        finally:
            conn.close()


def peers_python(log: Path) -> Path:
    """The peers' venv interpreter, creating the venv and installing the peers on first use."""
    python = PEERS_VENV / "bin" / "python"
    marker = PEERS_VENV / ".installed"
    if python.exists() and marker.exists():
        return python
    print(f"creating {PEERS_VENV} and installing {' '.join(PEER_PACKAGES)} (once)", flush=True)
    with open(log, "ab") as out:
        subprocess.run([sys.executable, "-m", "venv", str(PEERS_VENV)], check=True, stdout=out,
                       stderr=subprocess.STDOUT, timeout=300)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *PEER_PACKAGES], check=True,
                       stdout=out, stderr=subprocess.STDOUT, timeout=900)
    marker.write_text("\n".join(PEER_PACKAGES) + "\n")
    return python


def machine() -> dict[str, object]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram_gib = 0.0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram_gib = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "ram_gib": ram_gib, "kernel": platform.release(),
            "python": platform.python_version(), "hostname": socket.gethostname()}


class ForeignLoad:
    """Samples, twice a second, the CPU used by processes that are not this benchmark's (other
    people's tests, say): ``cores()`` is their average over the sampling period."""

    def __init__(self, own_tag_prefix: str, exclude: set[int]) -> None:
        self.needle = f"BENCH_TAG={own_tag_prefix}".encode()
        self.exclude = exclude
        self.ours: dict[int, bool] = {}
        self.last: dict[int, int] = {}
        self.foreign_ticks = 0
        self.began = 0.0
        self.stop_event = threading.Event()
        self.thread: threading.Thread | None = None

    def _is_ours(self, pid: int, parents: dict[int, int]) -> bool:
        """Tagged, or a descendant of a tagged process (setproctitle overwrites the environ
        block of oqron's processes)."""
        if pid not in self.ours:
            try:
                with open(f"/proc/{pid}/environ", "rb") as handle:
                    self.ours[pid] = self.needle in handle.read() or pid in self.exclude
            except OSError:
                self.ours[pid] = True  # gone or unreadable: don't count it
            if not self.ours[pid]:
                self.ours[pid] = any(self._is_ours(a, parents) for a in ancestors(pid, parents)[:1])
        return self.ours[pid]

    def _sample(self) -> None:
        current = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            pid = int(entry)
            try:
                with open(f"/proc/{pid}/stat") as handle:
                    fields = handle.read().split(") ", 1)[1].split()
            except (OSError, IndexError):
                continue
            current[pid] = int(fields[11]) + int(fields[12])
        parents = parent_map()
        for pid, ticks in current.items():
            if pid in self.last and not self._is_ours(pid, parents):
                self.foreign_ticks += max(0, ticks - self.last[pid])
        self.last = current

    def _loop(self) -> None:
        while not self.stop_event.wait(0.5):
            self._sample()

    def start(self) -> ForeignLoad:
        self.exclude.add(os.getpid())
        self._sample()
        self.foreign_ticks = 0
        self.began = time.monotonic()
        self.thread = threading.Thread(target=self._loop, name="foreign-load", daemon=True)
        self.thread.start()
        return self

    def stop(self) -> float:
        """Stop sampling; the foreign processes' average CPU use in cores."""
        self.stop_event.set()
        if self.thread is not None:
            self.thread.join(2)
        self._sample()
        elapsed = max(1e-6, time.monotonic() - self.began)
        return self.foreign_ticks / os.sysconf("SC_CLK_TCK") / elapsed
