"""The ingest pipeline and the `rag` command line, on real files, a real store and the real model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.cli import consistent, ingest_json, run

from rag.config import Settings


@pytest.fixture
def folder(tmp_path: Path, backend) -> Path:
    """Sample files; every test that takes them runs on each database (the `rag` commands read
    RAG_DATABASE_URL, which `backend` sets for PostgreSQL)."""
    docs = tmp_path / "docs"
    (docs / "sub").mkdir(parents=True)
    (docs / "bees.md").write_text("# Bees\n\nHoney bees dance to tell the hive where flowers are.\n\n"
                                  "## Swarming\n\nA swarm leaves with the old queen in late spring.\n")
    (docs / "solar.txt").write_text("Solar panels turn sunlight into direct current. An inverter makes "
                                    "alternating current for the house.\n")
    (docs / "sub" / "page.html").write_text("<html><head><title>Rain</title></head><body><h1>Rain barrels</h1>"
                                           "<p>A rain barrel holds about two hundred litres of water.</p></body></html>")
    (docs / ".hidden.txt").write_text("never ingested")
    (docs / "photo.png").write_bytes(b"\x89PNG\r\n")
    return docs


def test_ingest_is_idempotent_and_follows_edits_and_prunes(folder: Path, tmp_path: Path):
    first = ingest_json(str(folder), "-c", "notes")
    assert (first["added"], first["updated"], first["unchanged"], first["failed"]) == (3, 0, 0, [])
    assert [s["source"] for s in first["skipped"]] == [str(folder / "photo.png")]
    docs, chunks = consistent("notes")
    assert docs == 3 and chunks >= 3

    again = ingest_json(str(folder), "-c", "notes")
    assert (again["added"], again["updated"], again["unchanged"], again["chunks"]) == (0, 0, 3, 0)

    (folder / "solar.txt").write_text("Solar panels turn sunlight into direct current. Batteries store it for the night.\n")
    edited = ingest_json(str(folder), "-c", "notes")
    assert (edited["added"], edited["updated"], edited["unchanged"]) == (0, 1, 2)
    hits = json.loads(run("search", "batteries for the night", "-c", "notes", "--json", "-k", "1").stdout)["hits"]
    assert hits[0]["source"] == str((folder / "solar.txt").resolve())
    assert "Batteries" in hits[0]["text"]
    consistent("notes")

    # A document from elsewhere in the same collection is never pruned by a run over `folder`.
    other = tmp_path / "other.txt"
    other.write_text("Owls hunt at night and see well in the dark.")
    ingest_json(str(other), "-c", "notes")
    (folder / "bees.md").unlink()
    pruned = ingest_json(str(folder), "-c", "notes", "--prune")
    assert pruned["removed"] == 1
    docs, _ = consistent("notes")
    assert docs == 3  # solar, rain, owls
    lexical = json.loads(run("search", "swarm queen", "-c", "notes", "--json", "--mode", "lexical").stdout)["hits"]
    assert lexical == []
    dense = json.loads(run("search", "honey bees dancing", "-c", "notes", "--json", "--mode", "dense").stdout)["hits"]
    assert all("bees.md" not in h["source"] for h in dense)
    assert any(h["source"] == str(other.resolve()) for h in dense)


def test_failed_files_are_reported_and_do_not_stop_the_run(folder: Path):
    (folder / "empty.txt").write_text("")
    (folder / "broken.pdf").write_bytes(b"%PDF-1.4 this is not really a pdf")
    result = run("ingest", str(folder), "-c", "notes", code=1)
    assert "3 added" in result.stdout and "1 failed, 2 skipped" in result.stdout
    assert f"failed {folder / 'broken.pdf'}: " in result.stderr
    assert f"skipped {folder / 'empty.txt'}: empty file" in result.stderr  # empty: skipped, not failed
    docs = json.loads(run("documents", "list", "-c", "notes", "--json").stdout)["data"]
    failed = {Path(d["source"]).name: d for d in docs if d["status"] == "failed"}
    assert set(failed) == {"broken.pdf"} and all(d["error"] for d in failed.values())
    assert all(d["chunks"] == 0 for d in failed.values())


def test_collection_settings_are_checked(folder: Path):
    ingest_json(str(folder), "-c", "notes", "--chunk-size", "128", "--overlap", "16")
    result = run("ingest", str(folder), "-c", "notes", "--chunk-size", "256", code=2)
    assert "chunked at 128 tokens" in result.stderr
    assert run("ingest", "/no/such/path", "-c", "notes", code=2).stderr.count("no such file") == 1
    assert "no collection named 'nope'" in run("search", "x", "-c", "nope", code=3).stderr
    assert "mode" in run("search", "x", "-c", "notes", "--mode", "fuzzy", code=2).stderr


def test_jsonl_records_are_documents_with_metadata_and_filters(tmp_path: Path):
    corpus = tmp_path / "corpus.jsonl"
    records = [
        {"_id": "a1", "title": "Aspirin", "text": "Aspirin reduces the risk of heart attack.", "year": 2020},
        {"_id": "b2", "title": "Vitamin D", "text": "Vitamin D helps the body absorb calcium.", "year": 2021},
    ]
    corpus.write_text("\n".join(json.dumps(r) for r in records))
    summary = ingest_json(str(corpus), "-c", "med")
    assert summary["added"] == 2
    hits = json.loads(run("search", "calcium absorption", "-c", "med", "--json", "-k", "2").stdout)["hits"]
    assert hits[0]["source"] == f"{corpus.resolve()}#b2"
    assert hits[0]["title"] == "Vitamin D" and hits[0]["metadata"]["year"] == 2021
    only_2020 = json.loads(run("search", "calcium absorption", "-c", "med", "--json",
                               "--filter", '{"year": 2020}').stdout)["hits"]
    assert [h["source"].rsplit("#")[-1] for h in only_2020] == ["a1"]
    # Drop one record: with --prune only it leaves.
    corpus.write_text(json.dumps(records[0]))
    assert ingest_json(str(corpus), "-c", "med", "--prune")["removed"] == 1
    assert consistent("med")[0] == 1


def test_collections_documents_and_reindex_commands(folder: Path):
    ingest_json(str(folder), "-c", "notes")
    listed = json.loads(run("collections", "list", "--json").stdout)["data"]
    assert [(c["name"], c["documents"]) for c in listed] == [("notes", 3)]
    shown = json.loads(run("collections", "show", "notes").stdout)
    assert shown["embedder"] == {"kind": "local", "model": "all-MiniLM-L6-v2", "dim": 384}
    docs = json.loads(run("documents", "list", "-c", "notes", "--json").stdout)["data"]
    run("documents", "delete", "-c", "notes", str(docs[0]["id"]))
    assert consistent("notes")[0] == 2
    assert "no document with id 999999" in run("documents", "delete", "-c", "notes", "999999", code=3).stderr
    if not Settings.from_env().on_postgres:  # damage the index file (PostgreSQL has none)
        (Settings.from_env().index_dir / "collection-1.faiss").write_bytes(b"\0" * 10)
    assert "rebuilt with" in run("reindex", "-c", "notes").stderr
    consistent("notes")
    run("collections", "delete", "notes", "--yes")
    assert json.loads(run("collections", "list", "--json").stdout)["data"] == []


def test_similarity_from_arguments_file_and_stdin(tmp_path: Path):
    cat = "The cat sits on the mat"
    score = float(run("similarity", cat, "A feline rests on the rug").stdout)
    assert score == pytest.approx(0.5607, abs=0.001)
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text(f"{cat}\tA feline rests on the rug\n{cat}\tPython is a programming language\n")
    assert [float(x) for x in run("similarity", "--pairs", str(pairs)).stdout.split()] == pytest.approx(
        [0.5607, 0.0317], abs=0.001)
    from_stdin = run("similarity", "--pairs", "-", input=pairs.read_text()).stdout.split()
    assert len(from_stdin) == 2
    assert "two texts" in run("similarity", "only one", code=2).stderr


def test_eval_on_a_small_beir_folder(tmp_path: Path):
    beir = tmp_path / "beir"
    (beir / "qrels").mkdir(parents=True)
    docs = {"d1": ("Aspirin", "Aspirin lowers the risk of a second heart attack."),
            "d2": ("Vitamin D", "Vitamin D helps the gut absorb calcium from food."),
            "d3": ("Sleep", "Adults who sleep under six hours show slower reaction times."),
            "d4": ("Coffee", "Caffeine blocks adenosine receptors and delays sleepiness.")}
    (beir / "corpus.jsonl").write_text("\n".join(json.dumps({"_id": k, "title": t, "text": x})
                                                 for k, (t, x) in docs.items()))
    (beir / "queries.jsonl").write_text("\n".join(json.dumps(q) for q in [
        {"_id": "q1", "text": "calcium absorption"}, {"_id": "q2", "text": "heart attack prevention"},
        {"_id": "q3", "text": "an unjudged query"}]))
    (beir / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td2\t1\nq2\td1\t1\n")
    for mode in ("dense", "lexical", "hybrid"):
        result = json.loads(run("eval", "--beir", str(beir), "-c", "tiny", "--mode", mode, "--json").stdout)
        assert set(result) == {"ndcg@10", "recall@100", "mrr@10", "queries", "mode", "documents", "skipped", "failed"}
        assert (result["documents"], result["skipped"], result["failed"]) == (4, [], [])
        assert result["queries"] == 2 and result["mode"] == mode
        assert result["mrr@10"] == pytest.approx(1.0) and result["recall@100"] == pytest.approx(1.0)
    assert "--split" in run("eval", "--help").stdout
    assert "missing" in run("eval", "--beir", str(beir), "-c", "tiny", "--split", "dev", code=2).stderr


def test_symlinks_are_their_targets_and_are_never_pruned_by_mistake(tmp_path: Path):
    root = tmp_path / "notes"
    (root / ".versions").mkdir(parents=True)
    (root / ".versions" / "v3.md").write_text("# Plan\n\nVersion three of the plan: build the barn array first.\n")
    (root / "current.md").symlink_to(root / ".versions" / "v3.md")
    (root / "also-current.md").symlink_to(root / ".versions" / "v3.md")
    first = ingest_json(str(root), "-c", "notes", "--prune")
    assert first["added"] == 1 and first["removed"] == 0
    for _ in range(2):
        again = ingest_json(str(root), "-c", "notes", "--prune")
        assert (again["added"], again["updated"], again["unchanged"], again["removed"]) == (0, 0, 1, 0)
    docs = json.loads(run("documents", "list", "-c", "notes", "--json").stdout)["data"]
    assert [d["source"] for d in docs] == [str((root / ".versions" / "v3.md").resolve())]


def test_rag_embedder_setting_does_not_block_existing_collections(folder: Path, monkeypatch):
    ingest_json(str(folder), "-c", "notes")
    monkeypatch.setenv("RAG_EMBEDDER", "openai")
    assert ingest_json(str(folder), "-c", "notes")["unchanged"] == 3


def test_glob_selects_files_and_bounds_prune(folder: Path):
    only_md = ingest_json(str(folder), "-c", "notes", "--glob", "*.md")
    assert only_md["added"] == 1 and only_md["skipped"] == []
    ingest_json(str(folder), "-c", "notes")  # now everything
    (folder / "solar.txt").unlink()
    # A prune limited to *.md must not remove the vanished .txt file's document...
    assert ingest_json(str(folder), "-c", "notes", "--glob", "*.md", "--prune")["removed"] == 0
    # ...while one over *.txt does.
    assert ingest_json(str(folder), "-c", "notes", "--glob", "*.txt", "--prune")["removed"] == 1
    consistent("notes")
