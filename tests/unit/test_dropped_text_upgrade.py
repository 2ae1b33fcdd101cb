"""Migration 0009_dropped_text marks the documents an older chunker left text of in no chunk, so
their next ingest chunks them again; documents whose chunks cover their text keep their hash.
(tests/integration/test_dropped_text_upgrade_postgres.py runs the same on PostgreSQL.)"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import create_engine
from support.schema_history import DROPPED_TEXT_MARKED, upgrade_spanned_documents


def test_documents_whose_chunks_skip_text_are_marked_changed(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'rag.sqlite3'}")
    try:
        assert upgrade_spanned_documents(engine) == DROPPED_TEXT_MARKED
    finally:
        engine.dispose()
