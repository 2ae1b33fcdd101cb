"""Migration 0009_dropped_text on PostgreSQL: the same documents marked as on SQLite
(tests/unit/test_dropped_text_upgrade.py)."""

from __future__ import annotations

from sqlalchemy import create_engine
from support.schema_history import DROPPED_TEXT_MARKED, upgrade_spanned_documents


def test_documents_whose_chunks_skip_text_are_marked_changed_on_postgres(pg_url: str) -> None:
    engine = create_engine(pg_url)
    try:
        assert upgrade_spanned_documents(engine) == DROPPED_TEXT_MARKED
    finally:
        engine.dispose()
