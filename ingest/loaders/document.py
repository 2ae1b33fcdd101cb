"""The shape every loader produces: a document's full text and the elements it is made of.

Every document's `text` is its element texts joined by a blank line, and each element records the
character span it occupies in that text, so a chunk cut from the text can always be traced back to a
page, a section and an element kind.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Element", "LoadedDocument", "ParsedFile", "Piece", "assemble"]

_JOINER = "\n\n"

# Characters that are invisible inside a word yet split it for the word search: the soft hyphen
# (shown only where a line breaks), the word joiner and the zero-width no-break space. Taken out,
# "co\u00adoperative" is the word "cooperative" again.
_INVISIBLE_IN_WORDS = str.maketrans("", "", "\u00ad\u2060\ufeff")


@dataclass(frozen=True)
class Element:
    """One piece of a document's text, in reading order."""

    text: str
    """The element's text; equal to `document.text[start:end]`."""
    start: int
    """Offset of the first character in `LoadedDocument.text`."""
    end: int
    """Offset one past the last character in `LoadedDocument.text`."""
    page: int | None
    """1-based page number for PDFs, None for formats without pages."""
    section: str | None
    """Text of the nearest heading at or before this element, if any."""
    kind: str
    """Title, NarrativeText, UncategorizedText, ListItem, Table, CodeSnippet, Page (PDF), ..."""


@dataclass(frozen=True)
class LoadedDocument:
    """A parsed document: its full text and the elements that make it up."""

    source: str
    """Resolved absolute path; `path#_id` for a JSON Lines record; the given name for uploads."""
    title: str | None
    """The document's title, from its metadata or its leading heading, if it has one."""
    text: str
    """The full extracted text; element offsets index into it."""
    elements: list[Element]
    """The elements in reading order; never empty."""
    metadata: dict[str, Any] = field(default_factory=dict)
    """`format` and format-specific facts (PDF `pages`; a JSON Lines record's other keys)."""


@dataclass(frozen=True)
class Piece:
    """An element as a format loader finds it, before `assemble` gives it offsets and a section."""

    text: str
    kind: str
    page: int | None = None


@dataclass(frozen=True)
class ParsedFile:
    """What a single-document format loader found in a file; `assemble` turns it into a document."""

    title: str | None
    pieces: list[Piece]
    """In reading order; may be empty, which the caller reports as "no extractable text"."""
    metadata: dict[str, Any] = field(default_factory=dict)
    """Format-specific facts (PDF `pages`); the caller adds `format`."""


def assemble(
    source: str, title: str | None, pieces: Iterable[Piece], metadata: dict[str, Any]
) -> LoadedDocument:
    """Join the pieces into one text, recording each element's span and section; characters that
    are invisible inside a word (`_INVISIBLE_IN_WORDS`) are left out."""
    parts: list[str] = []
    elements: list[Element] = []
    offset = 0
    section: str | None = None
    for piece in pieces:
        # A piece of nothing else keeps them: an element is never empty.
        text = piece.text.translate(_INVISIBLE_IN_WORDS)
        # Trimmed again when something went (it may have stood at an end), but never emptied.
        text = (text.strip() if text != piece.text else text) or piece.text
        if parts:
            parts.append(_JOINER)
            offset += len(_JOINER)
        if piece.kind == "Title":
            section = text
        parts.append(text)
        elements.append(
            Element(
                text=text,
                start=offset,
                end=offset + len(text),
                page=piece.page,
                section=section,
                kind=piece.kind,
            )
        )
        offset += len(text)
    if title:
        title = title.translate(_INVISIBLE_IN_WORDS) or title
    return LoadedDocument(
        source=source, title=title, text="".join(parts), elements=elements, metadata=metadata
    )
