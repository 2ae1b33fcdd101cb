"""Settings: read from the environment once, then handed down explicitly.

Every tunable of the service is here, with the environment variable that sets it. README.md has the
same table; keep the two in step.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import overload

from rag.data_folder import default_home, legacy_home
from rag.errors import ConfigError

EMBEDDERS = ("local", "local-int8", "openai")
LOG_FORMATS = ("text", "json")


@overload
def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 1) -> int: ...
@overload
def _int(env: Mapping[str, str], name: str, default: None, minimum: int = 1) -> int | None: ...
def _int(env: Mapping[str, str], name: str, default: int | None, minimum: int = 1) -> int | None:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")
    return value


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number of seconds, got {raw!r}") from None
    if value <= 0:
        raise ConfigError(f"{name} must be positive, got {value}")
    return value


def _home(env: Mapping[str, str]) -> Path:
    """RAG_HOME if set; else an earlier version's `./data` holding a database; else the per-user folder."""
    raw = env.get("RAG_HOME", "").strip()
    if raw:
        return Path(raw).expanduser()
    return legacy_home(env) or default_home()
def _choice(env: Mapping[str, str], name: str, choices: tuple[str, ...]) -> str:
    """One of `choices` (the first when unset)."""
    raw = env.get(name, "").strip().lower() or choices[0]
    if raw not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {raw!r}")
    return raw


DATABASE_SCHEMES = ("sqlite", "postgresql+psycopg")
"""The URL schemes RAG_DATABASE_URL may name (PostgreSQL through psycopg 3 only)."""


def _database_url(env: Mapping[str, str]) -> str | None:
    raw = env.get("RAG_DATABASE_URL", "").strip()
    if not raw:
        return None
    scheme = raw.split("://", 1)[0] if "://" in raw else ""
    if scheme == "postgresql" or scheme == "postgres":
        raw, scheme = "postgresql+psycopg://" + raw.split("://", 1)[1], "postgresql+psycopg"
    if scheme not in DATABASE_SCHEMES:
        raise ConfigError(f"RAG_DATABASE_URL must start with {' or '.join(s + '://' for s in DATABASE_SCHEMES)}, "
                          f"got {scheme + '://' if scheme else 'no scheme'}")
    return raw


@dataclass(frozen=True, kw_only=True)
class Settings:
    """The service's configuration. Front ends build it once at start-up with `Settings.from_env()`
    and hand it to the `Service` they make; nothing reads the environment after that."""

    home: Path = field(default_factory=default_home)
    """RAG_HOME: folder for the database, FAISS indexes and the built ONNX model; by default the
    per-user data folder (`rag.data_folder`), or `./data` when that holds a database."""
    embedder: str = "local"
    """RAG_EMBEDDER: embedder for new collections, `local`, `local-int8` or `openai`."""
    openai_embedding_model: str = "text-embedding-3-small"
    """RAG_OPENAI_EMBEDDING_MODEL: model used by the `openai` embedder."""
    openai_embedding_dimensions: int | None = None
    """RAG_OPENAI_EMBEDDING_DIMENSIONS: shorten OpenAI embeddings to this many dimensions."""
    chat_model: str = "gpt-5.4-mini"
    """RAG_CHAT_MODEL: chat model that answers questions when an OpenAI key is set."""
    chat_context_tokens: int | None = None
    """RAG_CHAT_CONTEXT_TOKENS: context window of a chat model tiktoken does not know."""
    openai_api_key: str | None = field(default=None, repr=False)
    """OPENAI_API_KEY: enables chat answers and the passthrough routes (never the embedder)."""
    openai_base_url: str | None = None
    """OPENAI_BASE_URL: any OpenAI-compatible server; OpenAI's own when unset."""
    openai_timeout_s: float = 60.0
    """RAG_OPENAI_TIMEOUT_S: read timeout for upstream calls, in seconds."""
    api_keys: tuple[str, ...] = field(default=(), repr=False)
    """RAG_API_KEYS: comma-separated bearer keys the API accepts; empty means no auth."""
    max_upload_mb: int = 100
    """RAG_MAX_UPLOAD_MB: largest request body the API accepts."""
    embed_concurrency: int = 4
    """RAG_EMBED_CONCURRENCY: embedding requests an ingest keeps in flight while it parses, chunks and commits."""
    dense_exact_limit: int = 20_000
    """RAG_DENSE_EXACT_LIMIT: collections with fewer vectors are searched exactly (flat), larger
    ones approximately (HNSW); 0 makes every collection approximate."""
    index_checkpoint_s: float = 60.0
    """RAG_INDEX_CHECKPOINT_S: how often the dense indexes are checkpointed to disk, when enough changed."""
    answer_cache_entries: int = 1000
    """RAG_ANSWER_CACHE_ENTRIES: answers kept for replay (extractive, or temperature 0); 0 keeps none."""
    price_table: Path | None = None
    """RAG_PRICE_TABLE: JSON price table for answers' cost_usd (default: the shipped rag/data/prices.json)."""
    log_format: str = "text"
    """RAG_LOG_FORMAT: `text` (one line per event) or `json` (one object per line) for the server's logs."""
    allowed_hosts: tuple[str, ...] = ()
    """RAG_ALLOWED_HOSTS: comma-separated host names the API answers to besides the address it is bound
    to and `localhost` (the name a proxy or users reach it by); `*` answers to any."""
    answer_workers: int = 16
    """RAG_ANSWER_WORKERS: asks and collection chats answered at once (each may wait on the upstream)."""
    search_workers: int = 8
    """RAG_SEARCH_WORKERS: searches, similarity and embedding requests run at once."""
    queue_limit: int = 32
    """RAG_QUEUE_LIMIT: requests of one kind that may wait for a busy worker; beyond, 503 with Retry-After."""
    parse_timeout_s: float = 60.0
    """RAG_PARSE_TIMEOUT_S: longest a file may take to parse; its parser process is killed past it."""
    parse_memory_mb: int = 2048
    """RAG_PARSE_MEMORY_MB: address space a parser process may use (parsers and the file included)."""
    parse_workers: int = 2
    """RAG_PARSE_WORKERS: parser processes (started on first use, reused file after file)."""
    max_unzipped_mb: int = 256
    """RAG_MAX_UNZIPPED_MB: most a DOCX may unzip to; checked before any XML is parsed."""
    max_query_chars: int = 4000
    """RAG_MAX_QUERY_CHARS: longest query or question, in characters."""
    max_query_tokens: int = 1000
    """RAG_MAX_QUERY_TOKENS: longest query or question, in tokens (cl100k_base)."""
    max_query_terms: int = 100
    """RAG_MAX_QUERY_TERMS: most distinct words a query or question may give lexical search."""
    max_messages: int = 200
    """RAG_MAX_MESSAGES: most messages in one conversation (a chat completion's `messages`)."""
    max_upload_files: int = 100
    """RAG_MAX_UPLOAD_FILES: most files in one upload."""
    max_body_documents: int = 1000
    """RAG_MAX_BODY_DOCUMENTS: most documents in one JSON body."""
    max_document_tokens: int = 2_000_000
    """RAG_MAX_DOCUMENT_TOKENS: longest document, in tokens (cl100k_base), a file or a JSON body's."""
    max_filename_chars: int = 255
    """RAG_MAX_FILENAME_CHARS: longest name of an uploaded file."""
    max_filter_keys: int = 32
    """RAG_MAX_FILTER_KEYS: most keys in a metadata filter."""
    max_filter_values: int = 256
    """RAG_MAX_FILTER_VALUES: most values in a metadata filter, all keys together."""
    max_json_depth: int = 32
    """RAG_MAX_JSON_DEPTH: deepest nesting of arrays and objects in a JSON body."""
    database_url: str | None = None
    """RAG_DATABASE_URL: the database; unset means the SQLite file under RAG_HOME. A
    `postgresql+psycopg://` URL selects PostgreSQL with pgvector, where search runs in the database."""
    pg_ef_search: int = 200
    """RAG_PG_EF_SEARCH: on PostgreSQL, the HNSW candidate list of a dense search (`hnsw.ef_search`)."""
    worker_heartbeat_s: float = 15.0
    """RAG_WORKER_HEARTBEAT_S: how often a server's upload worker proves it is alive and looks for
    uploads a stopped server left."""
    worker_stale_s: float = 60.0
    """RAG_WORKER_STALE_S: a worker silent this long is gone; another server finishes its uploads."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        embedder = env.get("RAG_EMBEDDER", "").strip() or "local"
        if embedder not in EMBEDDERS:
            raise ConfigError(f"RAG_EMBEDDER must be one of {', '.join(EMBEDDERS)}, got {embedder!r}")
        keys = tuple(k.strip() for k in env.get("RAG_API_KEYS", "").split(",") if k.strip())
        return cls(
            home=_home(env),
            embedder=embedder,
            openai_embedding_model=env.get("RAG_OPENAI_EMBEDDING_MODEL", "").strip()
            or "text-embedding-3-small",
            openai_embedding_dimensions=_int(env, "RAG_OPENAI_EMBEDDING_DIMENSIONS", None),
            chat_model=env.get("RAG_CHAT_MODEL", "").strip() or "gpt-5.4-mini",
            chat_context_tokens=_int(env, "RAG_CHAT_CONTEXT_TOKENS", None, minimum=256),
            openai_api_key=env.get("OPENAI_API_KEY", "").strip() or None,
            openai_base_url=env.get("OPENAI_BASE_URL", "").strip() or None,
            openai_timeout_s=_float(env, "RAG_OPENAI_TIMEOUT_S", 60.0),
            api_keys=keys,
            max_upload_mb=_int(env, "RAG_MAX_UPLOAD_MB", 100),
            embed_concurrency=_int(env, "RAG_EMBED_CONCURRENCY", 4),
            dense_exact_limit=_int(env, "RAG_DENSE_EXACT_LIMIT", 20_000, minimum=0),
            index_checkpoint_s=_float(env, "RAG_INDEX_CHECKPOINT_S", 60.0),
            answer_cache_entries=_int(env, "RAG_ANSWER_CACHE_ENTRIES", 1000, minimum=0),
            price_table=Path(raw).expanduser() if (raw := env.get("RAG_PRICE_TABLE", "").strip()) else None,
            log_format=_choice(env, "RAG_LOG_FORMAT", LOG_FORMATS),
            allowed_hosts=tuple(h.strip().lower() for h in env.get("RAG_ALLOWED_HOSTS", "").split(",") if h.strip()),
            answer_workers=_int(env, "RAG_ANSWER_WORKERS", 16),
            search_workers=_int(env, "RAG_SEARCH_WORKERS", 8),
            queue_limit=_int(env, "RAG_QUEUE_LIMIT", 32, minimum=0),
            parse_timeout_s=_float(env, "RAG_PARSE_TIMEOUT_S", 60.0),
            parse_memory_mb=_int(env, "RAG_PARSE_MEMORY_MB", 2048, minimum=256),
            parse_workers=_int(env, "RAG_PARSE_WORKERS", 2),
            max_unzipped_mb=_int(env, "RAG_MAX_UNZIPPED_MB", 256),
            max_query_chars=_int(env, "RAG_MAX_QUERY_CHARS", 4000),
            max_query_tokens=_int(env, "RAG_MAX_QUERY_TOKENS", 1000),
            max_query_terms=_int(env, "RAG_MAX_QUERY_TERMS", 100),
            max_messages=_int(env, "RAG_MAX_MESSAGES", 200),
            max_upload_files=_int(env, "RAG_MAX_UPLOAD_FILES", 100),
            max_body_documents=_int(env, "RAG_MAX_BODY_DOCUMENTS", 1000),
            max_document_tokens=_int(env, "RAG_MAX_DOCUMENT_TOKENS", 2_000_000),
            max_filename_chars=_int(env, "RAG_MAX_FILENAME_CHARS", 255),
            max_filter_keys=_int(env, "RAG_MAX_FILTER_KEYS", 32),
            max_filter_values=_int(env, "RAG_MAX_FILTER_VALUES", 256),
            max_json_depth=_int(env, "RAG_MAX_JSON_DEPTH", 32, minimum=4),
            database_url=_database_url(env),
            pg_ef_search=_int(env, "RAG_PG_EF_SEARCH", 200, minimum=10),
            worker_heartbeat_s=_float(env, "RAG_WORKER_HEARTBEAT_S", 15.0),
            worker_stale_s=_float(env, "RAG_WORKER_STALE_S", 60.0),
        )

    @property
    def database_path(self) -> Path:
        return self.home / "rag.sqlite3"

    @property
    def database(self) -> str:
        """The SQLAlchemy URL of the database: RAG_DATABASE_URL, else the SQLite file under RAG_HOME."""
        return self.database_url or f"sqlite:///{self.database_path}"

    @property
    def on_postgres(self) -> bool:
        return self.database.startswith("postgresql")

    @property
    def index_dir(self) -> Path:
        return self.home / "indexes"

    @property
    def model_cache_dir(self) -> Path:
        return self.home / "models"

    @property
    def openai_enabled(self) -> bool:
        return self.openai_api_key is not None

