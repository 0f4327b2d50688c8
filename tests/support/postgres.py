"""A scratch database on the machine's PostgreSQL, created for one test session and dropped after.

The server comes from ``OQRON_TEST_PG`` (``scripts/pg-scratch start`` exports it, after
installing and starting PostgreSQL when needed). Database names carry ``OQRON_TEST_PG_RUN`` so
that ``scripts/pg-scratch stop`` can drop what a killed run left behind.
"""

from __future__ import annotations

import os
import secrets
from urllib.parse import urlsplit, urlunsplit

import psycopg2

DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"


def server_url() -> str:
    return os.environ.get("OQRON_TEST_PG") or DEFAULT_SERVER


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


class ScratchDatabase:
    def __init__(self, server: str | None = None) -> None:
        self.server = server or server_url()
        run = os.environ.get("OQRON_TEST_PG_RUN", "local")
        self.name = f"oqron_test_{run}_{secrets.token_hex(4)}"
        self.url = with_database(self.server, self.name)

    def _admin(self) -> psycopg2.extensions.connection:
        conn = psycopg2.connect(self.server, connect_timeout=5)
        conn.autocommit = True
        return conn

    def create(self) -> ScratchDatabase:
        conn = self._admin()
        try:
            with conn.cursor() as cur:
                cur.execute(f'CREATE DATABASE "{self.name}"')
        finally:
            conn.close()
        return self

    def drop(self) -> None:
        conn = self._admin()
        try:
            with conn.cursor() as cur:  # FORCE: also ends sessions a killed child left behind
                cur.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        finally:
            conn.close()

    def connect(self) -> psycopg2.extensions.connection:
        conn = psycopg2.connect(self.url)
        conn.autocommit = True
        return conn
