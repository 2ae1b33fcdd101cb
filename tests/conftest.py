"""Test-wide guards and fixtures for every tier: every data path under tmp_path, no connection
leaves this machine, the fake embedder registered, and seeded data folders to copy."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from support import fake_embedder
from support.echo_upstream import echo_upstream  # noqa: F401  (fixture)
from support.homes import seed
from support.offline import guard_network
from support.openai_server import openai_server  # noqa: F401  (fixture)
from support.postgres import PostgresServer, start_server
from support.tiers import tier_rank


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run the fast tiers first, so `make test` fails early (the sort is stable: a module's tests
    stay together and in order)."""
    tests_root = Path(__file__).resolve().parent
    items.sort(key=lambda item: tier_rank(item.path, tests_root))


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail loudly if anything in-process tries to reach beyond loopback."""
    guard_network(monkeypatch)


@pytest.fixture(autouse=True)
def rag_env(tmp_path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest):
    """Point RAG_HOME at a fresh folder and clear every OpenAI setting, for every test.

    XDG_DATA_HOME too, so a test that unsets RAG_HOME (to see the default data folder) never
    reaches the real per-user one. The built ONNX model is cached once per session (building it
    takes seconds), not per test.
    """
    home = tmp_path / "rag-home"
    monkeypatch.setenv("RAG_HOME", str(home))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "RAG_API_KEYS", "RAG_EMBEDDER",
                 "RAG_CHAT_MODEL", "RAG_CHAT_CONTEXT_TOKENS", "RAG_OPENAI_EMBEDDING_MODEL",
                 "RAG_OPENAI_TIMEOUT_S", "RAG_MAX_UPLOAD_MB", "RAG_OPENAI_EMBEDDING_DIMENSIONS",
                 "RAG_DATABASE_URL", "RAG_PG_EF_SEARCH", "RAG_WORKER_HEARTBEAT_S", "RAG_WORKER_STALE_S"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("DO_NOT_TRACK", "1")
    yield home


@pytest.fixture(scope="session", autouse=True)
def fake_embedder_kind() -> str:
    """Embedder kind `fake` (support.fake_embedder), available to every test of the session."""
    fake_embedder.register()
    return fake_embedder.KIND


@pytest.fixture(scope="session")
def seeded_home(tmp_path_factory) -> Path:
    """A data folder with the sample corpus ingested as collection `wren` by the real local model,
    once per session. Shared by every test that asks: never write to it; copy it (as `home` does).
    """
    return seed(tmp_path_factory.mktemp("seed"), "local")


@pytest.fixture(scope="session")
def fake_seeded_home(tmp_path_factory, fake_embedder_kind: str) -> Path:
    """Like `seeded_home`, embedded by the fake embedder (no model loaded): copy it, as `fake_home` does."""
    return seed(tmp_path_factory.mktemp("fake-seed"), fake_embedder_kind)


@pytest.fixture
def home(seeded_home: Path, rag_env: Path) -> Path:
    """A copy of the seeded data folder as this test's RAG_HOME."""
    shutil.copytree(seeded_home, rag_env)
    return rag_env


@pytest.fixture
def fake_home(fake_seeded_home: Path, rag_env: Path) -> Path:
    """A copy of the fake-embedded seeded data folder as this test's RAG_HOME."""
    shutil.copytree(fake_seeded_home, rag_env)
    return rag_env


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    """A private PostgreSQL with pgvector (support.postgres), started once per session on first use."""
    server = start_server()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def pg_url(pg_server: PostgresServer) -> Iterator[str]:
    """The URL of a fresh PostgreSQL database of this test's own, dropped after it."""
    name = pg_server.create_database()
    try:
        yield pg_server.url(name)
    finally:
        pg_server.drop_database(name)


@dataclass(frozen=True)
class Backend:
    """Which database a test runs on: `sqlite` (the file under RAG_HOME) or `postgres`."""

    name: str
    url: str | None
    """RAG_DATABASE_URL for this test (None: the SQLite default)."""

    def store_location(self, path: Path) -> Path | str:
        """What `Store(...)` takes: the SQLite file at `path`, or the PostgreSQL URL."""
        return self.url or path


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, rag_env: Path) -> Backend:
    """Run the test on each database: RAG_DATABASE_URL is set for PostgreSQL (so Settings.from_env()
    and every `rag` process a test starts use it); tests that build `Settings` themselves pass
    `database_url=backend.url`."""
    if request.param == "sqlite":
        monkeypatch.delenv("RAG_DATABASE_URL", raising=False)
        return Backend("sqlite", None)
    url = request.getfixturevalue("pg_url")
    monkeypatch.setenv("RAG_DATABASE_URL", url)
    return Backend("postgres", url)


@pytest.fixture(scope="session")
def fake_seeded_database(pg_server: PostgresServer, tmp_path_factory, fake_embedder_kind: str) -> str:
    """A PostgreSQL database holding what `fake_seeded_home` holds: a template to copy, never to use."""
    name = pg_server.create_database()
    seed(tmp_path_factory.mktemp("fake-seed-pg"), fake_embedder_kind, pg_server.url(name))
    return name


@pytest.fixture
def fake_backend_home(backend: Backend, rag_env: Path, request: pytest.FixtureRequest,
                      monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """`fake_home` on each backend: on PostgreSQL, a copy of the seeded database (RAG_DATABASE_URL
    points at it) and an empty RAG_HOME."""
    if backend.name == "sqlite":
        yield request.getfixturevalue("fake_home")
        return
    server: PostgresServer = request.getfixturevalue("pg_server")
    name = server.create_database(template=request.getfixturevalue("fake_seeded_database"))
    monkeypatch.setenv("RAG_DATABASE_URL", server.url(name))
    try:
        yield rag_env
    finally:
        server.drop_database(name)
