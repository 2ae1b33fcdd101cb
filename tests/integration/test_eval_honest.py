"""`rag eval` never pollutes and never lies: it refuses a collection of other documents, skips
and lists bad records, and exits non-zero when its score is not the data set's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.cli import ingest_json, run

DOCS = {"d1": ("Aspirin", "Aspirin lowers the risk of a second heart attack."),
        "d2": ("Vitamin D", "Vitamin D helps the gut absorb calcium from food."),
        "d3": ("Sleep", "Adults who sleep under six hours show slower reaction times.")}


def beir(folder: Path, qrels: str, *, records: list[dict] | None = None) -> Path:
    """A tiny BEIR folder whose corpus holds the three documents and, on line 3, an empty record."""
    (folder / "qrels").mkdir(parents=True)
    if records is None:
        records = [{"_id": k, "title": t, "text": x} for k, (t, x) in DOCS.items()]
        records.insert(2, {"_id": "d9", "title": "", "text": ""})
    (folder / "corpus.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n")
    (folder / "queries.jsonl").write_text("\n".join(json.dumps(q) for q in [
        {"_id": "q1", "text": "calcium absorption"}, {"_id": "q2", "text": "heart attack prevention"}]))
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + qrels)
    return folder


def test_an_empty_record_is_skipped_by_name_and_the_rest_scored(tmp_path: Path):
    folder = beir(tmp_path / "tiny", "q1\td2\t1\nq2\td1\t1\n")
    result = run("eval", "--beir", str(folder), "-c", "tiny", "--json")
    corpus = (folder / "corpus.jsonl").resolve()
    assert f"skipped {corpus}#d9: line 3: record 'd9' has no text and no title" in result.stderr
    scored = json.loads(result.stdout)
    assert scored["documents"] == 3 and scored["queries"] == 2
    assert scored["mrr@10"] == pytest.approx(1.0) and scored["ndcg@10"] == pytest.approx(1.0)
    assert scored["skipped"] == [{"source": f"{corpus}#d9",
                                  "reason": "line 3: record 'd9' has no text and no title"}]


def test_a_skipped_record_judged_relevant_fails_the_run_but_shows_the_score(tmp_path: Path):
    folder = beir(tmp_path / "tiny", "q1\td2\t1\nq2\td1\t1\nq2\td9\t1\n")
    result = run("eval", "--beir", str(folder), "-c", "tiny", code=1)
    assert "nDCG@10" in result.stdout
    assert "skipped records judged relevant in test.tsv: d9" in result.stderr


def test_nothing_ingested_is_an_error_not_a_zero(tmp_path: Path):
    folder = beir(tmp_path / "tiny", "q1\td2\t1\n", records=[{"_id": "d2", "text": "  "}])
    result = run("eval", "--beir", str(folder), "-c", "tiny", code=1)
    assert "nothing was ingested" in result.stderr and "nDCG" not in result.stdout


def test_a_collection_of_other_documents_is_refused_unless_allowed(tmp_path: Path):
    notes = tmp_path / "notes.txt"
    notes.write_text("My own note about the garden shed and its roof.")
    ingest_json(str(notes), "-c", "notes")
    folder = beir(tmp_path / "tiny", "q1\td2\t1\n")
    refused = run("eval", "--beir", str(folder), "-c", "notes", code=2)
    assert f"collection 'notes' holds documents from elsewhere ({notes.resolve()}, ...)" in refused.stderr
    assert "--allow-other-documents" in refused.stderr
    listed = json.loads(run("collections", "list", "--json").stdout)["data"]
    assert [(c["name"], c["documents"]) for c in listed] == [("notes", 1)]  # nothing written
    allowed = json.loads(run("eval", "--beir", str(folder), "-c", "notes", "--allow-other-documents",
                             "--json").stdout)
    assert allowed["documents"] == 3
