"""Migration 0006_answer_cache upgrades a database that the release before it (0005) filled: the
old collections get an empty answer cache that keeps and replays answers, and loses them with
their collection."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sqlalchemy import create_engine, text
from support.schema_history import OldCollection, OldDocument, build_database_at_0002

from rag.answer.cache import AnswerCache
from rag.answer.types import AnswerCitations, AnswerDelta, AnswerDone
from rag.migrations import migrate
from rag.store import Store

BEFORE = "0005_drop_chunks_fts"


def test_a_database_at_0005_upgrades_to_an_answer_cache_that_works(tmp_path: Path) -> None:
    path = tmp_path / "rag.sqlite3"
    vectors = np.eye(2, 4, dtype=np.float32)
    build_database_at_0002(path, [OldCollection("geo", 4, [OldDocument("delta.txt", ["a delta", "an estuary"],
                                                                        vectors)])])
    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:  # as the release before this step left it
        migrate(conn, upto=BEFORE)
        assert "answer_cache" not in set(conn.execute(text("SELECT name FROM sqlite_master")).scalars())
    engine.dispose()

    store = Store(path)  # opening the store runs the step
    try:
        with store.read() as s:
            applied = list(s.execute(text("SELECT name FROM schema_migrations ORDER BY version")).scalars())
            assert s.execute(text("SELECT COUNT(*) FROM answer_cache")).scalar_one() == 0
        assert applied[applied.index(BEFORE) + 1] == "0006_answer_cache"
        collection = store.get_collection("geo")
        cache = AnswerCache(store, entries=10)
        events = [AnswerDelta("A delta [1]."), AnswerCitations([]), AnswerDone("extractive", {"total_tokens": 0})]
        change = store.change_number(collection.id)
        assert change == 1  # the old rows' change number is what keys their answers
        cache.put("k", collection, change, events)
        replay = cache.get("k")
        assert replay is not None and replay[:2] == events[:2]
        assert isinstance(replay[2], AnswerDone) and replay[2].usage["cached"] is True
        store.delete_collection("geo")
        with store.read() as s:
            assert s.execute(text("SELECT COUNT(*) FROM answer_cache")).scalar_one() == 0
    finally:
        store.close()
