"""JSON Lines files in BEIR corpus format: one document per record."""

from __future__ import annotations

import json
from typing import Any

from ingest.loaders.document import LoadedDocument, Piece, assemble
from rag.errors import UnreadableFile

__all__ = ["load_jsonl"]


def load_jsonl(source: str, display: str, data: bytes) -> list[LoadedDocument]:
    """One document per record `{"_id", "title"?, "text", ...}`; blank lines are skipped.

    The stored text is `title + "\\n\\n" + text` (a Title element then a NarrativeText element)
    so the title is embedded with the body, as BEIR does, and offsets stay honest. Each record's
    source is `source#_id`.
    """
    try:
        content = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UnreadableFile(f"{display}: not UTF-8 ({exc.reason} at byte {exc.start})") from exc
    documents: list[LoadedDocument] = []
    first_line_of: dict[str, int] = {}
    for number, line in enumerate(content.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{display}: line {number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            reason = f"invalid JSON ({exc.msg} at column {exc.colno})"
            raise UnreadableFile(f"{where}: {reason}") from exc
        if not isinstance(record, dict):
            raise UnreadableFile(f"{where}: expected a JSON object, got {type(record).__name__}")
        doc_id = record.get("_id")
        if isinstance(doc_id, bool) or not isinstance(doc_id, (str, int)) or str(doc_id) == "":
            raise UnreadableFile(f"{where}: missing or invalid \"_id\" (a string is required)")
        doc_id = str(doc_id)
        if doc_id in first_line_of:
            raise UnreadableFile(
                f"{where}: duplicate _id {doc_id!r} (first seen on line {first_line_of[doc_id]})"
            )
        first_line_of[doc_id] = number
        title = _string_field(record, "title", where)
        body = _string_field(record, "text", where)
        if not title and not body:
            raise UnreadableFile(f"{where}: record {doc_id!r} has no text and no title")
        pieces = []
        if title:
            pieces.append(Piece(title, "Title"))
        if body:
            pieces.append(Piece(body, "NarrativeText"))
        extra = {k: v for k, v in record.items() if k not in ("_id", "title", "text")}
        # No line number here: metadata is part of a document's hash, and moving a record within
        # its file must not make it look changed.
        metadata = {"format": "jsonl", "_id": doc_id, **extra}
        documents.append(assemble(f"{source}#{doc_id}", title or None, pieces, metadata))
    if not documents:
        raise UnreadableFile(f"{display}: no records")
    return documents


def _string_field(record: dict[str, Any], key: str, where: str) -> str:
    value = record.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise UnreadableFile(f"{where}: \"{key}\" must be a string, got {type(value).__name__}")
    return value.strip()
