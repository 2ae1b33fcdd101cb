"""Documents that arrive as text rather than as a file (the API's JSON body)."""

from __future__ import annotations

import re
from typing import Any

from ingest.loaders.document import LoadedDocument, Piece, assemble
from rag.errors import UnreadableFile

__all__ = ["document_from_text"]


def document_from_text(source: str, text: str, *, title: str | None = None,
                       metadata: dict[str, Any] | None = None) -> LoadedDocument:
    """A document given as text (the API's JSON body): paragraphs split at blank lines, the title
    first as its own element, as a JSON Lines record is."""
    pieces = [Piece(title.strip(), "Title")] if title and title.strip() else []
    pieces += [Piece(p.strip(), "NarrativeText") for p in re.split(r"\n\s*\n", text) if p.strip()]
    if not pieces:
        raise UnreadableFile(f"{source}: no text")
    return assemble(source, title.strip() if title else None, pieces, {"format": "text", **(metadata or {})})
