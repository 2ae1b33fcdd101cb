"""Storage per chunk is bounded: a chunk keeps at most `HEADING_CHARS` of its heading, so a file
that is one long heading (a huge Markdown `#` line, a one-line text without a full stop) costs storage linear in its size.

Before the bound every chunk copied the whole heading: a 1 MB single-line file made about 1,300
chunks each holding 1 MB, over a gigabyte of database.
"""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

import numpy as np
from sqlalchemy import create_engine, text
from support.schema_history import OldCollection, OldDocument, build_database_at_0002

from ingest.loaders import load_file
from ingest.pipeline import Pipeline
from rag.config import Settings
from rag.records import HEADING_CHARS, heading_excerpt
from rag.service import Service
from rag.store import Store

_SYLLABLES = ("ka", "lo", "mi", "ren", "tu", "sa", "vel", "dor", "ith", "an")


def _single_line(path: Path, size: int, seed: int) -> Path:
    """A Markdown file of `size` bytes that is one heading line of made-up words."""
    rng = random.Random(seed)
    words = ["".join(rng.choice(_SYLLABLES) for _ in range(rng.randrange(1, 4))) for _ in range(size // 4)]
    path.write_text(("# " + " ".join(words))[:size])
    return path


def _database_growth(tmp_path: Path, name: str, size: int) -> tuple[int, int]:
    """(bytes the database grew by, chunks) for ingesting one single-line file of `size` bytes."""
    home = tmp_path / name
    settings = Settings(home=home, embedder="fake")
    with Service(settings) as service:
        collection = service.create_collection("c")
        before = settings.database_path.stat().st_size
        docs = load_file(_single_line(tmp_path / f"{name}.md", size, seed=size))
        assert len(docs) == 1 and docs[0].elements[0].kind == "Title"  # the whole file is a heading
        summary = Pipeline(service.writer(collection)).ingest_documents(docs)
    with sqlite3.connect(settings.database_path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return settings.database_path.stat().st_size - before, summary.chunks


def test_a_one_megabyte_single_line_file_grows_the_database_linearly(tmp_path: Path) -> None:
    small, small_chunks = _database_growth(tmp_path, "half", 500_000)
    big, big_chunks = _database_growth(tmp_path, "full", 1_000_000)
    assert big_chunks > 1_000
    # What a chunk must cost: its text, its vector, the document's text once. Copying the heading
    # into every chunk made this ~1,300 MB; bounded, it is a few megabytes.
    assert big < 8 * 1_000_000, f"1 MB file grew the database by {big / 1e6:.1f} MB"
    # Linear: twice the file, about twice the growth (quadratic would be four times).
    assert big / small < 2.6, (small, big)


def test_search_answers_carry_a_bounded_section_and_title(tmp_path: Path) -> None:
    with Service(Settings(home=tmp_path / "h", embedder="fake")) as service:
        collection = service.create_collection("c")
        docs = load_file(_single_line(tmp_path / "long.md", 200_000, seed=1))
        Pipeline(service.writer(collection)).ingest_documents(docs)
        word = docs[0].text.split()[5]
        hits = service.search("c", word, k=10, mode="lexical")
    assert hits
    for hit in hits:
        assert hit.section is not None and len(hit.section) == HEADING_CHARS and hit.section.endswith("…")
        assert hit.title == hit.section
        assert docs[0].text.startswith(hit.section[:-1])


def test_heading_excerpt_keeps_short_headings_and_cuts_long_ones() -> None:
    assert heading_excerpt(None) is None
    assert heading_excerpt("Intro") == "Intro"
    exact = "x" * HEADING_CHARS
    assert heading_excerpt(exact) == exact
    cut = heading_excerpt("é" * (HEADING_CHARS + 1))
    assert cut == "é" * (HEADING_CHARS - 1) + "…"


def test_migration_0007_cuts_the_headings_an_older_release_stored(tmp_path: Path) -> None:
    path = tmp_path / "rag.sqlite3"
    long = "ü" * 5_000
    docs = [OldDocument("a.txt", ["alpha one", "alpha two"], _unit(2), title=long),
            OldDocument("b.txt", ["bravo"], _unit(1), title="Short")]
    build_database_at_0002(path, [OldCollection("old", 4, docs)])
    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:  # as a release that kept whole headings wrote them
        conn.execute(text("UPDATE chunks SET section = :s WHERE text LIKE 'alpha%'"), {"s": long})
        conn.execute(text("UPDATE chunks SET section = 'Bravo' WHERE text = 'bravo'"))
    engine.dispose()

    store = Store(path)
    try:
        collection = store.get_collection("old")
        stored = {d.source: d for d in store.list_documents(collection.id)}
        assert stored["a.txt"].title == heading_excerpt(long) and stored["b.txt"].title == "Short"
        ids, _, _ = store.vectors(collection.id)
        chunks = store.chunks(list(ids))
        sections = sorted((c.text, c.section) for c in chunks.values())
        assert sections == [("alpha one", heading_excerpt(long)), ("alpha two", heading_excerpt(long)),
                            ("bravo", "Bravo")]
        assert len(heading_excerpt(long) or "") == HEADING_CHARS
    finally:
        store.close()


def _unit(n: int) -> np.ndarray:
    v = np.random.default_rng(n).standard_normal((n, 4)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)

