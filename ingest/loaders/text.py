"""Plain text, Markdown, HTML and DOCX through unstructured's format-specific partitioners.

unstructured is reached only through `unstructured_setup.partitioners()`, which imports it (offline)
on the first file of one of these formats.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable
from typing import Any

from ingest.loaders.document import ParsedFile, Piece
from ingest.loaders.docx_markup import expose_hidden_text
from ingest.loaders.failures import failure_reason
from ingest.loaders.html_text import html_title, legacy_encoding, table_text
from ingest.loaders.unstructured_setup import partitioners
from rag.errors import UnreadableFile, UnsupportedFile

__all__ = ["load_docx", "load_html", "load_md", "load_txt"]

# Element kinds that carry no content worth searching: repeated page furniture and markers.
_DROPPED_KINDS = frozenset({"Header", "Footer", "PageBreak", "PageNumber", "Image"})

# How prose ends: a full stop, exclamation or question mark, or a colon introducing a list,
# possibly followed by a closing quote or bracket. Headings rarely end in "." or "!".
_PROSE_END = re.compile(r"[.!?:…][\"'”’)\]]*$")
_STATEMENT_END = re.compile(r"[.!…][\"'”’)\]]*$")
_HAS_WORD_CHAR = re.compile(r"\w")


def load_txt(display: str, data: bytes) -> ParsedFile:
    """A plain text file; its title is a leading heading, if unstructured finds one."""
    text = _decode(display, data)
    pieces = _pieces(_partition(display, "txt", text=text), heuristic_titles=True)
    return ParsedFile(_leading_title(pieces), pieces)


def load_md(display: str, data: bytes) -> ParsedFile:
    """A Markdown file; its title is its leading heading, if any."""
    text = _decode(display, data)
    pieces = _pieces(_partition(display, "md", text=text), heuristic_titles=False)
    return ParsedFile(_leading_title(pieces), pieces)


def load_html(display: str, data: bytes) -> ParsedFile:
    """An HTML page; its title is the <title>, else its leading heading. A page that is not UTF-8
    is read in the encoding its <meta> tag declares, else as Windows-1252."""
    text = _decode(display, data, legacy=legacy_encoding(data))
    pieces = _pieces(_partition(display, "html", text=text), heuristic_titles=False)
    return ParsedFile(html_title(text) or _leading_title(pieces), pieces)


def load_docx(display: str, data: bytes) -> ParsedFile:
    """A Word document; its title is the core-properties title, else its leading heading."""
    if data[:4] != b"PK\x03\x04":
        raise UnreadableFile(f"{display}: cannot parse DOCX (not a zip archive)")
    # Text in content controls, tracked insertions, text boxes, notes, ... (see docx_markup).
    elements = _partition(display, "docx", file=io.BytesIO(expose_hidden_text(data)))
    pieces = _pieces(elements, heuristic_titles=False)
    return ParsedFile(_docx_title(data) or _leading_title(pieces), pieces)


def _decode(display: str, data: bytes, legacy: str = "cp1252") -> str:
    """Bytes of a text format to str: UTF-8 (with or without BOM), else the `legacy` encoding
    (Windows-1252 unless the file says otherwise)."""
    if b"\x00" in data[:8192]:  # dispatch refuses binary content first; this guards direct calls
        raise UnsupportedFile(f"{display}: binary content, not a text file")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        # Legacy files, mostly from Windows editors; cp1252 leaves five bytes undefined, hence replace.
        text = data.decode(legacy, errors="replace")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _partition(display: str, fmt: str, **kwargs: Any) -> list[Any]:
    # Outside the try: an incompatible unstructured is a broken installation, not a bad file.
    partition = partitioners()[fmt]
    try:
        return partition(**kwargs)
    except UnreadableFile:
        raise
    except Exception as exc:  # parsers raise anything from KeyError to BadZipFile on bad input
        raise UnreadableFile(f"{display}: cannot parse {fmt.upper()} ({failure_reason(exc)})") from exc


def _kind(category: str, text: str, *, heuristic_titles: bool) -> str:
    """unstructured's category, corrected for the missing part-of-speech tagger.

    Without a tagger unstructured finds no verbs, so a sentence it would call NarrativeText comes
    out as UncategorizedText, or, in plain text where titles are guessed from short lines, as
    Title. Text that ends like a sentence is prose; a guessed title ending in "?" or ":" stays a
    title, since headings such as "Is the money safe?" are common.
    """
    if category == "UncategorizedText" and _PROSE_END.search(text):
        return "NarrativeText"
    if category == "Title" and heuristic_titles and _STATEMENT_END.search(text):
        return "NarrativeText"
    return category


def _pieces(elements: Iterable[Any], *, heuristic_titles: bool) -> list[Piece]:
    pieces: list[Piece] = []
    for element in elements:
        category = getattr(element, "category", type(element).__name__)
        if category in _DROPPED_KINDS:
            continue
        text = (element.text or "").strip()
        if category == "Table":
            html = getattr(element.metadata, "text_as_html", None)
            text = (table_text(html) if html else "") or text
        # Rules such as "=====" or "* * *" carry nothing to search for.
        if not _HAS_WORD_CHAR.search(text):
            continue
        pieces.append(Piece(text, _kind(category, text, heuristic_titles=heuristic_titles)))
    return pieces


def _leading_title(pieces: list[Piece]) -> str | None:
    return pieces[0].text if pieces and pieces[0].kind == "Title" else None


def _docx_title(data: bytes) -> str | None:
    """The title in the document's core properties, if its author set one."""
    import docx

    try:
        title = docx.Document(io.BytesIO(data)).core_properties.title
    except Exception:  # the body parsed already; a broken core.xml just means no title
        return None
    return (title or "").strip() or None
