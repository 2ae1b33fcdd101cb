"""`rag migrate --to URL`: collections copied between SQLite and PostgreSQL without re-embedding,
verified by counts, checksums and the exact dense top 10 on both sides, with the hybrid overlap@10
reported beside."""

from __future__ import annotations

import json

from support.cli import run
from support.homes import SAMPLE_COLLECTION, SAMPLE_DOCUMENTS

from rag.config import Settings
from rag.service import Service
from rag.store import Store
from rag.transfer import checksum


def test_a_sqlite_collection_moves_to_postgres_and_back_unchanged(fake_home, pg_url, tmp_path):
    copied = json.loads(run("migrate", "--to", pg_url, "--json").stdout)["collections"]
    assert [(c["name"], c["documents"], c["verified"]) for c in copied] == [
        (SAMPLE_COLLECTION, SAMPLE_DOCUMENTS, True)]
    assert copied[0]["identical_top10"] == copied[0]["queries"] == copied[0]["chunks"]  # each chunk a query
    # Hybrid through each engine's own indexes: reported, not required to match (the lexical
    # analysers differ), but on a small collection most of each top 10 is shared.
    assert 0.5 <= copied[0]["hybrid_overlap_at_10"] <= 1.0
    source, target = Store(Settings.from_env().database_path), Store(pg_url)
    try:
        a, b = source.get_collection(SAMPLE_COLLECTION, counts=True), target.get_collection(SAMPLE_COLLECTION, counts=True)
        assert (b.documents, b.chunks, b.embedder) == (a.documents, a.chunks, a.embedder)
        assert checksum(source, a) == checksum(target, b) == copied[0]["checksum"]
    finally:
        source.close()
        target.close()
    # The copy searches on PostgreSQL as the original does on SQLite (dense: the same exact top 3).
    with Service(Settings(home=tmp_path / "pg-home", embedder="fake", database_url=pg_url)) as on_pg, \
            Service(Settings.from_env()) as on_sqlite:
        for query in ("battery warranty", "who maintains the panels"):
            assert [h.source for h in on_pg.search(SAMPLE_COLLECTION, query, k=3, mode="dense")] == \
                [h.source for h in on_sqlite.search(SAMPLE_COLLECTION, query, k=3, mode="dense")]
    # Again: the target has the name, nothing is written, exit 4 (conflict).
    assert "already has a collection named 'wren'" in run("migrate", "--to", pg_url, code=4).stderr
    # And back, into a new SQLite file.
    back = tmp_path / "back.sqlite3"
    with Service(Settings(home=tmp_path / "pg-home", database_url=pg_url)) as on_pg:
        [report] = on_pg.copy_to(f"sqlite:///{back}")
    assert report.verified and report.copy.source_checksum == copied[0]["checksum"]


def test_hybrid_overlap_is_one_between_two_copies_on_the_same_engine(fake_home, tmp_path):
    # SQLite to SQLite: the same indexes over the same rows, so every hybrid top 10 is the same;
    # anything less would be the comparison's own error (ids, sampling or fusion mixed up).
    printed = run("migrate", "--to", f"sqlite:///{tmp_path / 'copy.sqlite3'}").stdout
    assert f"{SAMPLE_COLLECTION}: {SAMPLE_DOCUMENTS} documents" in printed
    assert "verified; hybrid overlap@10 1.00 (reported, not checked" in printed


def test_a_bad_target_is_a_clear_error(fake_home):
    assert "must start with sqlite:/// or postgresql" in run("migrate", "--to", "mysql://db/x", code=5).stderr
    assert "must be a database URL" in run("migrate", "--to", "just-a-name", code=2).stderr
    assert "cannot open the database" in run(
        "migrate", "--to", "postgresql+psycopg://nobody@/none?host=/nonexistent", code=5).stderr
