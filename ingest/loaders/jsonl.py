"""JSON Lines files in BEIR corpus format: one document per record.

A bad record (invalid JSON, no `_id`, no text, ...) is one record's problem, not the file's:
`read_jsonl` sets it aside, named by its line, and returns the rest; `load_jsonl` (uploads, which
are taken whole or not at all) raises on the first one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ingest.loaders.document import LoadedDocument, Piece, assemble
from rag.errors import UnreadableFile

__all__ = ["JsonLines", "SkippedRecord", "load_jsonl", "read_jsonl"]


@dataclass(frozen=True)
class SkippedRecord:
    """A record left out of a JSON Lines file: empty or malformed."""

    line: int
    """1-based line number in the file."""
    reason: str
    """Why, e.g. `record '12' has no text and no title`."""
    record_id: str | None = None
    """Its `_id`, when it has a usable one."""


@dataclass
class JsonLines:
    """What a JSON Lines file holds: its good records as documents, and the bad ones set aside."""

    documents: list[LoadedDocument] = field(default_factory=list)
    skipped: list[SkippedRecord] = field(default_factory=list)

    @property
    def records(self) -> int:
        """Records in the file (non-blank lines), good and bad."""
        return len(self.documents) + len(self.skipped)


def load_jsonl(source: str, display: str, data: bytes) -> list[LoadedDocument]:
    """Every record of the file as a document; raises `UnreadableFile` for the first bad record."""
    read = read_jsonl(source, display, data)
    if read.skipped:
        bad = read.skipped[0]
        raise UnreadableFile(f"{display}: line {bad.line}: {bad.reason}")
    if not read.documents:
        raise UnreadableFile(f"{display}: no records")
    return read.documents


def read_jsonl(source: str, display: str, data: bytes) -> JsonLines:
    """One document per record `{"_id", "title"?, "text", ...}`; blank lines are not records.

    The stored text is `title + "\\n\\n" + text` (a Title element then a NarrativeText element)
    so the title is embedded with the body, as BEIR does, and offsets stay honest. Each record's
    source is `source#_id`. Empty and malformed records are set aside in `skipped`, named by line;
    only a file that is not UTF-8 raises `UnreadableFile`.
    """
    try:
        content = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UnreadableFile(f"{display}: not UTF-8 ({exc.reason} at byte {exc.start})") from exc
    out = JsonLines()
    first_line_of: dict[str, int] = {}
    for number, line in enumerate(content.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            out.documents.append(_record(source, line, number, first_line_of))
        except _BadRecord as bad:
            out.skipped.append(SkippedRecord(number, bad.reason, bad.record_id))
    return out


class _BadRecord(Exception):
    def __init__(self, reason: str, record_id: str | None = None):
        super().__init__(reason)
        self.reason = reason
        self.record_id = record_id


def _record(source: str, line: str, number: int, first_line_of: dict[str, int]) -> LoadedDocument:
    """The document of one line, or `_BadRecord` saying what is wrong with it."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise _BadRecord(f"invalid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(record, dict):
        raise _BadRecord(f"expected a JSON object, got {type(record).__name__}")
    doc_id = record.get("_id")
    if isinstance(doc_id, bool) or not isinstance(doc_id, (str, int)) or str(doc_id) == "":
        raise _BadRecord("missing or invalid \"_id\" (a string is required)")
    doc_id = str(doc_id)
    if doc_id in first_line_of:
        raise _BadRecord(f"duplicate _id {doc_id!r} (first seen on line {first_line_of[doc_id]})", doc_id)
    first_line_of[doc_id] = number
    title = _string_field(record, "title", doc_id)
    body = _string_field(record, "text", doc_id)
    if not title and not body:
        raise _BadRecord(f"record {doc_id!r} has no text and no title", doc_id)
    pieces = []
    if title:
        pieces.append(Piece(title, "Title"))
    if body:
        pieces.append(Piece(body, "NarrativeText"))
    extra = {k: v for k, v in record.items() if k not in ("_id", "title", "text")}
    # No line number here: metadata is part of a document's hash, and moving a record within
    # its file must not make it look changed.
    metadata = {"format": "jsonl", "_id": doc_id, **extra}
    return assemble(f"{source}#{doc_id}", title or None, pieces, metadata)


def _string_field(record: dict[str, Any], key: str, doc_id: str) -> str:
    value = record.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _BadRecord(f"\"{key}\" must be a string, got {type(value).__name__}", doc_id)
    return value.strip()
