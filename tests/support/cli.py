"""The `rag` command line in-process (click's CliRunner), and the checks its runs are held to."""

from __future__ import annotations

import json
import sqlite3
import threading

from click.testing import CliRunner, Result

from ingest.cli import main
from rag.config import Settings
from rag.indexes.dense_faiss import IndexCache, VectorIndex
from rag.indexes.lexical_tantivy import TantivyIndex
from rag.store import Store


def run(*args: str, input: str | None = None, code: int = 0) -> Result:
    """`rag ARGS` in this process, with `input` as stdin; fails unless it exits with `code`."""
    result = CliRunner().invoke(main, list(args), input=input, catch_exceptions=False)
    assert result.exit_code == code, result.output + result.stderr
    return result


def ingest_json(*args: str, code: int = 0) -> dict:
    """The summary `rag ingest ARGS --json` prints."""
    return json.loads(run("ingest", *args, "--json", code=code).stdout)


def consistent(collection: str) -> tuple[int, int]:
    """Assert the FAISS index on disk (under RAG_HOME) holds exactly the store's chunk ids, the
    lexical index on disk is stamped with the store's change number and holds every chunk, and no
    source is stored twice; return (documents, chunks)."""
    # The command ran in this process (CliRunner): its lexical commit ends as it would at exit.
    for thread in threading.enumerate():
        if thread.name == "lexical-commit":
            thread.join()
    settings = Settings.from_env()
    if settings.on_postgres:
        return _consistent_on_postgres(settings, collection)
    store = Store(settings.database_path)
    coll = store.get_collection(collection, counts=True)
    ids, _, stamp = store.vectors(coll.id)
    # What the next start loads, with no rebuild: the dense checkpoint plus the change log.
    cache = IndexCache(store, settings.index_dir, background=False)
    saved = VectorIndex.load(cache.path(coll.id))
    assert saved.stamp <= stamp and store.changes_since(coll.id, saved.stamp) is not None
    index = cache.current(coll)
    lexical = TantivyIndex(store, settings.index_dir / "tantivy")
    lexical_stamp = json.loads((lexical.folder(coll.id) / "stamp.json").read_text())["stamp"]
    lexical_chunks = lexical.load(coll)
    store.close()
    assert index.stamp == stamp
    assert sorted(index.ids().tolist()) == sorted(ids.tolist())
    assert lexical_stamp == stamp and lexical_chunks == coll.chunks
    with sqlite3.connect(settings.database_path) as db:
        dupes = db.execute("SELECT source, COUNT(*) FROM documents GROUP BY collection_id, source HAVING COUNT(*) > 1").fetchall()
    assert dupes == []
    return coll.documents, coll.chunks


def _consistent_on_postgres(settings: Settings, collection: str) -> tuple[int, int]:
    """`consistent` where search runs in the database: the collection's HNSW index exists, the
    searches find its chunks, no file was written under RAG_HOME's indexes, no source twice."""
    from sqlalchemy import text

    store = Store(settings.database)
    try:
        coll = store.get_collection(collection, counts=True)
        with store.read() as s:
            assert s.execute(text(f"SELECT to_regclass('chunks_hnsw_{coll.id}')")).scalar() is not None
            dupes = s.execute(text("SELECT source, COUNT(*) FROM documents GROUP BY collection_id, source "
                                   "HAVING COUNT(*) > 1")).all()
    finally:
        store.close()
    assert not settings.index_dir.exists() or not any(settings.index_dir.iterdir())
    assert dupes == []
    return coll.documents, coll.chunks
