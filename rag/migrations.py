"""Schema changes as ordered, named steps. Never edit a step that has shipped: add the next one.

Each step runs in the same transaction that records it in `schema_migrations`, so a crash leaves
either the old schema or the new one.

The schema the steps build is described once more, as it stands now, by the table classes in
`rag.schema`; a test migrates an empty database and holds the two equal, and another upgrades a
database that the first two steps built and filled. A schema change is a new step here that also
fills existing rows, the matching edit in `rag.schema`, and both tests passing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import Connection, bindparam, text

from rag.errors import MigrationError

log = logging.getLogger(__name__)

Step = Callable[[Connection], None]


def _initial(conn: Connection) -> None:
    for ddl in (
        # AUTOINCREMENT: ids are never reused, so a stale derived index can never point at a new row.
        """CREATE TABLE collections (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            name TEXT NOT NULL UNIQUE,
            embedder_kind TEXT NOT NULL,
            embedder_model TEXT NOT NULL,
            dim INTEGER NOT NULL,
            chunk_size INTEGER NOT NULL,
            chunk_overlap INTEGER NOT NULL,
            change_number INTEGER NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL
        )""",
        """CREATE TABLE documents (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            collection_id INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
            source TEXT NOT NULL,
            content_hash TEXT NOT NULL,
            title TEXT,
            text TEXT NOT NULL,
            status TEXT NOT NULL,
            error TEXT,
            metadata TEXT NOT NULL DEFAULT '{}',
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            UNIQUE (collection_id, source)
        )""",
        """CREATE TABLE chunks (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            document_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
            collection_id INTEGER NOT NULL,
            ordinal INTEGER NOT NULL,
            text TEXT NOT NULL,
            token_count INTEGER NOT NULL,
            start_char INTEGER NOT NULL,
            end_char INTEGER NOT NULL,
            page INTEGER,
            section TEXT,
            vector BLOB NOT NULL
        )""",
        "CREATE INDEX chunks_document ON chunks(document_id)",
        "CREATE INDEX chunks_collection ON chunks(collection_id)",
        # Lexical index over chunk text. External content: the text is stored once, in chunks;
        # triggers keep the index in the same transaction as the rows it indexes.
        """CREATE VIRTUAL TABLE chunks_fts USING fts5(
            text, content='chunks', content_rowid='id', tokenize='porter unicode61 remove_diacritics 2'
        )""",
        """CREATE TRIGGER chunks_fts_insert AFTER INSERT ON chunks BEGIN
            INSERT INTO chunks_fts(rowid, text) VALUES (new.id, new.text);
        END""",
        """CREATE TRIGGER chunks_fts_delete AFTER DELETE ON chunks BEGIN
            INSERT INTO chunks_fts(chunks_fts, rowid, text) VALUES ('delete', old.id, old.text);
        END""",
    ):
        conn.execute(text(ddl))


def _ingest_workers(conn: Connection) -> None:
    # Several API processes may share one database: each records which queued documents are its
    # own and proves it is alive, so a restart fails only the uploads of processes that are gone.
    conn.execute(text("ALTER TABLE documents ADD COLUMN owner TEXT"))
    conn.execute(text("CREATE TABLE ingest_workers (id TEXT PRIMARY KEY, heartbeat_at REAL NOT NULL)"))


def _chunk_changes(conn: Connection) -> None:
    # A log of which chunks each change number added and removed, so a process whose derived index
    # is behind the store replays what it lacks instead of rebuilding from every vector. The log of
    # a collection is complete from `changes_from` on; an index stamped earlier is rebuilt. Existing
    # collections start their log at their present change number (nothing before it is logged).
    conn.execute(text("ALTER TABLE collections ADD COLUMN changes_from INTEGER NOT NULL DEFAULT 0"))
    conn.execute(text("UPDATE collections SET changes_from = change_number"))
    conn.execute(text(
        """CREATE TABLE chunk_changes (
            collection_id INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
            change_number INTEGER NOT NULL,
            chunk_id INTEGER NOT NULL,
            added BOOLEAN NOT NULL,
            PRIMARY KEY (collection_id, change_number, chunk_id)
        ) WITHOUT ROWID"""))


def _document_metadata(conn: Connection) -> None:
    # Metadata filters by index, not by scan: each top-level key of a document's metadata and its
    # value as SQLite's JSON functions read it (json_each gives what json_extract gave the scan it
    # replaces: TEXT for a string, INTEGER for a whole number or a boolean, REAL, or the JSON text
    # of an array or object), so a filter compares exactly as before. BLOB affinity keeps each
    # value's own type. The key is (collection, key, value, document): a filter is one range of it.
    # Null values are left out: json_extract's NULL never matched a filter.
    conn.execute(text(
        """CREATE TABLE document_metadata (
            collection_id INTEGER NOT NULL,
            key TEXT NOT NULL,
            value BLOB NOT NULL,
            document_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
            PRIMARY KEY (collection_id, key, value, document_id)
        ) WITHOUT ROWID"""))
    conn.execute(text("CREATE INDEX document_metadata_document ON document_metadata(document_id)"))
    conn.execute(text(
        """INSERT OR IGNORE INTO document_metadata (collection_id, key, value, document_id)
        SELECT d.collection_id, j.key, j.value, d.id
        FROM documents d,
             json_each(CASE WHEN json_valid(d.metadata) AND json_type(d.metadata) = 'object'
                            THEN d.metadata ELSE '{}' END) j
        WHERE j.type != 'null'"""))


def _drop_chunks_fts(conn: Connection) -> None:
    # Lexical search moved to tantivy (rag.indexes.lexical_tantivy), an index kept beside the
    # database and built from the store on first use. The FTS5 table's triggers indexed every
    # chunk written (a quarter to a third of the time of a document write, measured on SciFact)
    # for a search nothing asks any more; dropped, with the table and its shadow tables.
    conn.execute(text("DROP TRIGGER IF EXISTS chunks_fts_insert"))
    conn.execute(text("DROP TRIGGER IF EXISTS chunks_fts_delete"))
    conn.execute(text("DROP TABLE IF EXISTS chunks_fts"))


def _answer_cache(conn: Connection) -> None:
    # Answers kept for replay, keyed by a hash of everything that shapes them (rag.answer.cache),
    # and stamped with the collection's change number: a write to the collection makes them stale.
    # A new table: there are no existing rows to fill.
    conn.execute(text(
        """CREATE TABLE answer_cache (
            key TEXT NOT NULL PRIMARY KEY,
            collection_id INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
            change_number INTEGER NOT NULL,
            events TEXT NOT NULL,
            created_at REAL NOT NULL,
            used_at REAL NOT NULL
        )"""))
    conn.execute(text("CREATE INDEX answer_cache_collection ON answer_cache(collection_id, change_number)"))
    conn.execute(text("CREATE INDEX answer_cache_used ON answer_cache(used_at)"))


def bounded_headings(conn: Connection) -> None:
    """Step 0007 of both engines (its SQL is portable: substr, length and || are PostgreSQL's too)."""
    # Every chunk carried the full text of its heading, and a heading can be a whole file (a
    # one-line text without a full stop is one long "title"): storage and search answers grew with
    # chunks x heading length. The store now keeps at most 200 characters of a section or a title
    # (rag.records.heading_excerpt); rows written before are cut the same way: 199 characters and
    # "…". SQLite's substr and length count characters, as Python does. The number is frozen here.
    for table, column in (("chunks", "section"), ("documents", "title")):
        conn.execute(text(f"UPDATE {table} SET {column} = substr({column}, 1, 199) || '…' "
                          f"WHERE length({column}) > 200"))


def unfinished_documents(conn: Connection) -> None:
    """Step 0008 of both engines (its SQL is portable: a partial index)."""
    # Every upload worker asks, at start and at each heartbeat, for the queued and processing
    # documents of dead workers (rag.workers.claim_orphaned): without an index that read every
    # document, text and all (1.5 s at 125k documents, in front of every server start). A partial
    # index holds only the unfinished ones, normally none. Portable: PostgreSQL runs it as is.
    conn.execute(text("CREATE INDEX documents_unfinished ON documents(id) WHERE status IN ('queued', 'processing')"))


def dropped_text(conn: Connection) -> None:
    """Step 0009 of both engines (its SQL is portable: a window function, substr and length)."""
    # Until this step's release the chunker could leave a paragraph in no chunk (rag.chunking: a
    # chunk whose units fitted its budget went over it once the blank lines between them were
    # counted, gave its last unit back, and no chunk took it up). The text is stored, but no search
    # can find it. Documents whose chunks skip text are marked changed, their content hash cleared,
    # so the next `rag ingest` of their files (or a new upload) chunks them again. Overlapping
    # chunks are compared with the furthest end before them; a gap of blank lines is no loss.
    rows = conn.execute(text(
        """SELECT g.document_id, substr(d.text, g.covered + 1, g.start_char - g.covered)
           FROM (SELECT document_id, start_char,
                        MAX(end_char) OVER (PARTITION BY document_id ORDER BY start_char, id
                                            ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS covered
                 FROM chunks) g
           JOIN documents d ON d.id = g.document_id
           WHERE g.covered IS NOT NULL AND g.start_char - g.covered > 2
           UNION ALL
           SELECT d.id, substr(d.text, m.covered + 1)
           FROM documents d JOIN (SELECT document_id, MAX(end_char) AS covered FROM chunks GROUP BY document_id) m
             ON m.document_id = d.id
           WHERE length(d.text) - m.covered > 2""")).all()
    affected = sorted({document for document, skipped in rows if skipped and skipped.strip()})
    for i in range(0, len(affected), 500):
        ids = {"ids": affected[i:i + 500], "e": DROPPED_TEXT_ERROR}
        conn.execute(text("UPDATE documents SET content_hash = '', error = :e WHERE id IN :ids")
                     .bindparams(bindparam("ids", expanding=True)), ids)
    if affected:
        named = conn.execute(text(
            "SELECT c.name, d.source FROM documents d JOIN collections c ON c.id = d.collection_id "
            "WHERE d.id IN :ids ORDER BY c.name, d.source").bindparams(bindparam("ids", expanding=True)),
            {"ids": affected[:20]}).all()
        log.warning("%d document(s) had text in no chunk, a chunking fault now fixed: ingest their files again, "
                    "or upload them again (`rag documents list` shows their error). %s%s", len(affected),
                    ", ".join(f"{c}: {src}" for c, src in named), " ..." if len(affected) > len(named) else "")


DROPPED_TEXT_ERROR = "part of its text is in no chunk (a chunking fault, now fixed): ingest or upload it again"
"""The error step 0009 notes on the documents it marks (still ready: what their chunks hold is searchable)."""


MIGRATIONS: list[tuple[str, Step]] = [
    ("0001_initial", _initial),
    ("0002_ingest_workers", _ingest_workers),
    ("0003_chunk_changes", _chunk_changes),
    ("0004_document_metadata", _document_metadata),
    ("0005_drop_chunks_fts", _drop_chunks_fts),
    ("0006_answer_cache", _answer_cache),
    ("0007_bounded_headings", bounded_headings),
    ("0008_unfinished_documents", unfinished_documents),
    ("0009_dropped_text", dropped_text),
]


def migrate(conn: Connection, *, upto: str | None = None) -> int:
    """Apply every step not yet applied, in order; return the schema version.

    `upto` names the last step to apply (the rest wait for a later call): tests build a database
    as an older release left it, fill it, and then upgrade it the way a new release would.
    PostgreSQL has its own steps (`rag.migrations_postgres`), from a baseline at version 5.
    """
    if conn.dialect.name == "postgresql":
        return _migrate_postgres(conn, upto=upto)
    names = [name for name, _ in MIGRATIONS]
    if upto is not None and upto not in names:
        raise ValueError(f"no migration step named {upto!r}")
    steps = MIGRATIONS if upto is None else MIGRATIONS[:names.index(upto) + 1]
    conn.execute(text(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)"
    ))
    applied = {row[0] for row in conn.execute(text("SELECT name FROM schema_migrations"))}
    unknown = applied - set(names)
    if unknown:
        raise MigrationError(
            f"the database has migrations this version does not know ({', '.join(sorted(unknown))}): "
            "it was written by a newer release"
        )
    for version, (name, step) in enumerate(steps, start=1):
        if name not in applied:
            step(conn)
            conn.execute(text("INSERT INTO schema_migrations(version, name) VALUES (:v, :n)"),
                         {"v": version, "n": name})
    return len(applied | {name for name, _ in steps})


def _migrate_postgres(conn: Connection, *, upto: str | None) -> int:
    from rag.migrations_postgres import POSTGRES_MIGRATIONS

    names = [name for _, name, _ in POSTGRES_MIGRATIONS]
    if upto is not None and upto not in names:
        raise ValueError(f"no PostgreSQL migration step named {upto!r}")
    steps = POSTGRES_MIGRATIONS if upto is None else POSTGRES_MIGRATIONS[:names.index(upto) + 1]
    # Two servers starting at once on an empty database: one migrates, the other waits, then
    # finds the steps applied (the lock ends with the transaction).
    conn.execute(text("SELECT pg_advisory_xact_lock(7406001)"))
    conn.execute(text(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)"
    ))
    applied: dict[str, int] = dict(conn.execute(text("SELECT name, version FROM schema_migrations")).all())
    unknown = set(applied) - set(names)
    if unknown:
        raise MigrationError(
            f"the database has migrations this version does not know ({', '.join(sorted(unknown))}): "
            "it was written by a newer release"
        )
    for version, name, step in steps:
        if name not in applied:
            step(conn)
            conn.execute(text("INSERT INTO schema_migrations(version, name) VALUES (:v, :n)"),
                         {"v": version, "n": name})
            applied[name] = version
    return max(applied.values())
