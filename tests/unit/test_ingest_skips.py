"""What is skipped rather than failed: bad JSON Lines records (each named by line), empty files and
files of unsupported types; and the progress a JSON Lines file reports, counted by its records."""

from __future__ import annotations

import json
from pathlib import Path

from support.cli import ingest_json, run
from support.homes import SAMPLE_COLLECTION

from ingest.pipeline import Pipeline, Progress
from rag.config import Settings
from rag.service import Service

GOOD = 30


def corpus(folder: Path) -> Path:
    path = folder / "corpus.jsonl"
    lines = [json.dumps({"_id": str(i), "title": f"Note {i}", "text": f"River note number {i}."}) for i in range(GOOD)]
    lines.insert(3, json.dumps({"_id": "empty", "title": "", "text": ""}))  # line 4
    lines.insert(10, '{"_id": "half", "text": ')  # line 11
    lines.insert(12, "")  # a blank line is no record
    lines.append(json.dumps({"_id": "7", "text": "a second record 7"}))  # line 34
    path.write_text("\n".join(lines) + "\n")
    return path


def test_bad_records_are_skipped_by_line_and_the_rest_ingested(tmp_path: Path, fake_embedder_kind: str):
    path = corpus(tmp_path)
    seen: list[Progress] = []
    with Service(Settings(home=tmp_path / "home", embedder=fake_embedder_kind)) as service:
        collection = service.create_collection("c")
        summary = Pipeline(service.writer(collection), on_progress=seen.append).ingest_paths([path])
        assert len(summary.added) == GOOD and summary.failed == []
        assert [(s.source, s.reason) for s in summary.skipped] == [
            (f"{path}#empty", "line 4: record 'empty' has no text and no title"),
            (str(path), "line 11: invalid JSON (Expecting value at column 25)"),
            (f"{path}#7", "line 34: duplicate _id '7' (first seen on line 9)"),
        ]
        assert {d.status for d in service.list_documents("c", limit=100)} == {"ready"}
    # The progress counts the file's records from the moment it is read, not `0/1 files`.
    records = [(p.records_done, p.records_total) for p in seen if p.records_total]
    assert records[0] == (3, GOOD + 3)  # the skipped ones are done at once
    assert records[-1] == (GOOD + 3, GOOD + 3)


def test_empty_and_unsupported_files_named_on_the_command_line_are_skipped(tmp_path: Path, fake_home: Path):
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "blank.md").write_text("  \n\n")
    (tmp_path / "photo.png").write_bytes(b"\x89PNG\r\n")
    (tmp_path / "good.txt").write_text("Solar panels turn sunlight into current.")
    names = [str(tmp_path / n) for n in ("empty.txt", "blank.md", "photo.png", "good.txt")]
    summary = ingest_json(*names, "-c", SAMPLE_COLLECTION)
    assert (summary["added"], summary["failed"]) == (1, [])
    assert sorted((Path(s["source"]).name, s["reason"]) for s in summary["skipped"]) == [
        ("blank.md", "empty file"), ("empty.txt", "empty file"), ("photo.png", "unsupported file type .png")]
    listed = json.loads(run("documents", "list", "-c", SAMPLE_COLLECTION, "--json").stdout)["data"]
    assert {d["status"] for d in listed} == {"ready"}
    text = run("ingest", *names, "-c", SAMPLE_COLLECTION)
    assert f"skipped {tmp_path / 'photo.png'}: unsupported file type .png" in text.stderr
    assert "0 failed, 3 skipped" in text.stdout
