"""`rag eval --answers` on the sample corpus, answered by the real local model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from ingest.cli import main


def test_rag_eval_answers_prints_each_half_and_lists_failures(home: Path, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAG_COLLECTION", "wren")
    small = tmp_path / "set.json"
    small.write_text(json.dumps({"items": [
        {"id": "panels", "half": "tune", "question": "How many panels are on the school roof?",
         "facts": ["540 panels"], "sources": ["the-arrays.html"]},
        {"id": "impossible", "half": "held-out", "question": "How many panels are on the school roof?",
         "facts": ["a fact no answer holds"], "sources": ["the-arrays.html"]},
    ]}))
    result = CliRunner().invoke(main, ["eval", "--answers", str(small)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "tune      1/1 correct (100.0%)" in result.output
    assert "held-out  0/1 correct (0.0%)" in result.output
    assert "FAIL impossible (held-out)" in result.output and "FAIL panels" not in result.output
    as_json = CliRunner().invoke(main, ["eval", "--answers", str(small), "--half", "tune", "--json"],
                                 catch_exceptions=False)
    assert json.loads(as_json.output) == {"halves": {"tune": {"correct": 1, "asked": 1, "accuracy": 1.0}},
                                          "failures": []}
    neither = CliRunner().invoke(main, ["eval"], catch_exceptions=False)
    assert neither.exit_code == 2 and "--beir DIR or --answers FILE" in neither.output
