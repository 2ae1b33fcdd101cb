"""The `rag` command line in-process (click's CliRunner), and the checks its runs are held to."""

from __future__ import annotations

import json
import sqlite3

from click.testing import CliRunner, Result

from ingest.cli import main
from rag.config import Settings
from rag.indexes.dense_faiss import IndexCache, VectorIndex
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
    """Assert the FAISS index on disk (under RAG_HOME) holds exactly the store's chunk ids, with no
    duplicate sources and a full-text row per chunk; return (documents, chunks)."""
    settings = Settings.from_env()
    store = Store(settings.database_path)
    coll = store.get_collection(collection, counts=True)
    ids, _, stamp = store.vectors(coll.id)
    index = VectorIndex.load(IndexCache(store, settings.index_dir).path(coll.id))
    store.close()
    assert index.stamp == stamp
    assert sorted(index.ids().tolist()) == sorted(ids.tolist())
    with sqlite3.connect(settings.database_path) as db:
        dupes = db.execute("SELECT source, COUNT(*) FROM documents GROUP BY collection_id, source HAVING COUNT(*) > 1").fetchall()
        fts = db.execute("SELECT COUNT(*) FROM chunks_fts").fetchone()[0]
    assert dupes == []
    assert fts == coll.chunks
    return coll.documents, coll.chunks
