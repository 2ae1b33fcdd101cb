"""Loaders: turn a file (or uploaded bytes) into documents made of elements with offsets and pages.

Text, Markdown, HTML and DOCX go through unstructured's format-specific partitioners; PDFs are read
page by page from their text layer with pypdf (unstructured's PDF extra needs torch and model
downloads); JSON Lines files in BEIR corpus format give one document per record.

Every document's `text` is its element texts joined by a blank line, and each element records the
character span it occupies in that text, so a chunk cut from the text can always be traced back to a
page, a section and an element kind.

unstructured is imported lazily, on the first file that needs it: importing it (with spaCy) takes a
few seconds, and commands such as `rag search` never load a file.
"""

from __future__ import annotations

import io
import json
import os
import re
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cache
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from rag.errors import UnreadableFile, UnsupportedFile

__all__ = [
    "Element",
    "LoadedDocument",
    "SUPPORTED_SUFFIXES",
    "document_from_text",
    "load_bytes",
    "load_file",
]

# unstructured pings a telemetry endpoint when it is imported unless one of these is set. Set them
# here, before anything can import it, so the service never phones home.
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("SCARF_NO_ANALYTICS", "true")
os.environ.setdefault("UNSTRUCTURED_DISABLE_NOTICE", "1")

_FORMATS: dict[str, str] = {
    ".txt": "txt",
    ".md": "md",
    ".markdown": "md",
    ".html": "html",
    ".htm": "html",
    ".docx": "docx",
    ".pdf": "pdf",
    ".jsonl": "jsonl",
}

SUPPORTED_SUFFIXES: frozenset[str] = frozenset(_FORMATS)
"""File name suffixes (lower case, with the dot) that have a loader."""

_JOINER = "\n\n"

# Element kinds that carry no content worth searching: repeated page furniture and markers.
_DROPPED_KINDS = frozenset({"Header", "Footer", "PageBreak", "PageNumber", "Image"})

# How prose ends: a full stop, exclamation or question mark, or a colon introducing a list,
# possibly followed by a closing quote or bracket. Headings rarely end in "." or "!".
_PROSE_END = re.compile(r"[.!?:…][\"'”’)\]]*$")
_STATEMENT_END = re.compile(r"[.!…][\"'”’)\]]*$")
_HAS_WORD_CHAR = re.compile(r"\w")


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
class _Piece:
    """An element before offsets are assigned."""

    text: str
    kind: str
    page: int | None = None


def load_file(path: Path) -> list[LoadedDocument]:
    """Load one file from disk. A JSON Lines file yields one document per record, others one.

    Raises UnsupportedFile for a suffix without a loader and UnreadableFile when the file cannot be
    read or holds no extractable text; both messages name the file.
    """
    path = Path(path)
    fmt = _format_for_suffix(path.name)
    if fmt is None:
        raise UnsupportedFile(_unsupported_message(path.name))
    resolved = path.resolve()
    try:
        data = resolved.read_bytes()
    except OSError as exc:
        raise UnreadableFile(f"{path}: cannot read file ({exc.strerror or exc})") from exc
    return _load(str(resolved), str(path), fmt, data)


def load_bytes(name: str, data: bytes) -> list[LoadedDocument]:
    """Load an upload given its file name and content; `source` is the name.

    The type comes from the name's suffix; a name without a known suffix is accepted when the
    content is recognisably a PDF or a DOCX.
    """
    fmt = _format_for_suffix(name) or _sniff(data)
    if fmt is None:
        raise UnsupportedFile(_unsupported_message(name))
    return _load(name, name, fmt, data)


def _format_for_suffix(name: str) -> str | None:
    return _FORMATS.get(Path(name).suffix.lower())


def _unsupported_message(name: str) -> str:
    suffix = Path(name).suffix or "(no suffix)"
    supported = ", ".join(sorted(SUPPORTED_SUFFIXES))
    return f"{name}: unsupported file type {suffix}; supported types: {supported}"


def _sniff(data: bytes) -> str | None:
    """Recognise the binary formats by their content; text formats are too ambiguous to guess."""
    if b"%PDF-" in data[:1024]:
        return "pdf"
    if data[:4] == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                if "word/document.xml" in archive.namelist():
                    return "docx"
        except zipfile.BadZipFile:
            return None
    return None


def _load(source: str, display: str, fmt: str, data: bytes) -> list[LoadedDocument]:
    if not data.strip():
        raise UnreadableFile(f"{display}: empty file")
    if fmt == "jsonl":
        return _load_jsonl(source, display, data)
    loader = _LOADERS[fmt]
    title, pieces, metadata = loader(display, data)
    if not pieces:
        raise UnreadableFile(f"{display}: no extractable text")
    return [_assemble(source, title, pieces, {"format": fmt, **metadata})]


def _assemble(
    source: str, title: str | None, pieces: Iterable[_Piece], metadata: dict[str, Any]
) -> LoadedDocument:
    """Join the pieces into one text, recording each element's span and section."""
    parts: list[str] = []
    elements: list[Element] = []
    offset = 0
    section: str | None = None
    for piece in pieces:
        if parts:
            parts.append(_JOINER)
            offset += len(_JOINER)
        if piece.kind == "Title":
            section = piece.text
        parts.append(piece.text)
        elements.append(
            Element(
                text=piece.text,
                start=offset,
                end=offset + len(piece.text),
                page=piece.page,
                section=section,
                kind=piece.kind,
            )
        )
        offset += len(piece.text)
    return LoadedDocument(
        source=source, title=title, text="".join(parts), elements=elements, metadata=metadata
    )


# --- text formats through unstructured -------------------------------------------------------


def _decode(display: str, data: bytes) -> str:
    """Bytes of a text format to str: UTF-8 (with or without BOM), else Windows-1252."""
    if b"\x00" in data[:8192]:
        raise UnreadableFile(f"{display}: binary content, not a text file")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        # Legacy files from Windows editors; cp1252 leaves five bytes undefined, hence replace.
        text = data.decode("cp1252", errors="replace")
    return text.replace("\r\n", "\n").replace("\r", "\n")


@cache
def _partitioners() -> dict[str, Callable[..., list[Any]]]:
    """Import unstructured once, with its spaCy model download replaced by a blank pipeline.

    unstructured 0.27 classifies text with spaCy's en_core_web_sm and, when the model is not
    installed, downloads and pip-installs it on first use (`unstructured.nlp.tokenize.
    _load_spacy_model`). Offline that fails, or hangs for two minutes where connections are
    silently dropped. A blank English pipeline with a sentencizer gives it tokens and sentences
    without any download; it has no part-of-speech tagger, which `_kind()` makes up for.
    """
    from unstructured.nlp import tokenize

    tokenize._load_spacy_model = _blank_spacy_pipeline
    tokenize._install_spacy_model = _refuse_spacy_download
    tokenize._get_nlp.cache_clear()

    from unstructured.partition.docx import partition_docx
    from unstructured.partition.html import partition_html
    from unstructured.partition.md import partition_md
    from unstructured.partition.text import partition_text

    return {
        "txt": partition_text,
        "md": partition_md,
        "html": partition_html,
        "docx": partition_docx,
    }


def _blank_spacy_pipeline() -> Any:
    import spacy

    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    nlp.meta["name"] = "rag_blank_sentencizer"
    return nlp


def _refuse_spacy_download() -> None:
    raise RuntimeError("the spaCy model download is disabled: this service runs offline")


def _partition(display: str, fmt: str, **kwargs: Any) -> list[Any]:
    partition = _partitioners()[fmt]
    try:
        return partition(**kwargs)
    except UnreadableFile:
        raise
    except Exception as exc:  # parsers raise anything from KeyError to BadZipFile on bad input
        raise UnreadableFile(f"{display}: cannot parse {fmt.upper()} ({_reason(exc)})") from exc


def _reason(exc: Exception) -> str:
    message = str(exc).strip()
    name = type(exc).__name__
    return f"{name}: {message}" if message else name


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


def _pieces(elements: Iterable[Any], *, heuristic_titles: bool) -> list[_Piece]:
    pieces: list[_Piece] = []
    for element in elements:
        category = getattr(element, "category", type(element).__name__)
        if category in _DROPPED_KINDS:
            continue
        text = (element.text or "").strip()
        if category == "Table":
            html = getattr(element.metadata, "text_as_html", None)
            text = (_table_text(html) if html else "") or text
        # Rules such as "=====" or "* * *" carry nothing to search for.
        if not _HAS_WORD_CHAR.search(text):
            continue
        pieces.append(_Piece(text, _kind(category, text, heuristic_titles=heuristic_titles)))
    return pieces


def _leading_title(pieces: list[_Piece]) -> str | None:
    return pieces[0].text if pieces and pieces[0].kind == "Title" else None


def _load_txt(display: str, data: bytes) -> tuple[str | None, list[_Piece], dict[str, Any]]:
    text = _decode(display, data)
    pieces = _pieces(_partition(display, "txt", text=text), heuristic_titles=True)
    return _leading_title(pieces), pieces, {}


def _load_md(display: str, data: bytes) -> tuple[str | None, list[_Piece], dict[str, Any]]:
    text = _decode(display, data)
    pieces = _pieces(_partition(display, "md", text=text), heuristic_titles=False)
    return _leading_title(pieces), pieces, {}


def _load_html(display: str, data: bytes) -> tuple[str | None, list[_Piece], dict[str, Any]]:
    text = _decode(display, data)
    pieces = _pieces(_partition(display, "html", text=text), heuristic_titles=False)
    return _html_title(text) or _leading_title(pieces), pieces, {}


def _load_docx(display: str, data: bytes) -> tuple[str | None, list[_Piece], dict[str, Any]]:
    if data[:4] != b"PK\x03\x04":
        raise UnreadableFile(f"{display}: cannot parse DOCX (not a zip archive)")
    elements = _partition(display, "docx", file=io.BytesIO(data))
    pieces = _pieces(elements, heuristic_titles=False)
    return _docx_title(data) or _leading_title(pieces), pieces, {}


def _docx_title(data: bytes) -> str | None:
    """The title in the document's core properties, if its author set one."""
    import docx

    try:
        title = docx.Document(io.BytesIO(data)).core_properties.title
    except Exception:  # the body parsed already; a broken core.xml just means no title
        return None
    return (title or "").strip() or None


class _TitleParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.inside = False
        self.done = False
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title" and not self.done:
            self.inside = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "title" and self.inside:
            self.inside = False
            self.done = True

    def handle_data(self, data: str) -> None:
        if self.inside:
            self.parts.append(data)


def _html_title(html: str) -> str | None:
    parser = _TitleParser()
    parser.feed(html)
    parser.close()
    title = " ".join("".join(parser.parts).split())
    return title or None


class _TableParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.rows: list[list[str]] = []
        self.cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            if not self.rows:
                self.rows.append([])
            self.cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self.cell is not None:
            self.rows[-1].append(" ".join("".join(self.cell).split()))
            self.cell = None

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.cell.append(data)


def _table_text(html: str) -> str:
    """A table as one line per row with cells separated by ' | ', so rows stay readable.

    unstructured's own table text runs every cell together with spaces, which loses which value
    belongs to which row.
    """
    parser = _TableParser()
    parser.feed(html)
    parser.close()
    lines = [" | ".join(row) for row in parser.rows if any(row)]
    return "\n".join(lines)


# --- PDF through pypdf -----------------------------------------------------------------------


def _load_pdf(display: str, data: bytes) -> tuple[str | None, list[_Piece], dict[str, Any]]:
    from pypdf import PdfReader
    from pypdf.errors import DependencyError, FileNotDecryptedError

    if b"%PDF-" not in data[:1024]:
        raise UnreadableFile(f"{display}: cannot parse PDF (no %PDF header)")
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            # Many PDFs are encrypted only to restrict printing or copying, with an empty user
            # password: those open. Anything that needs a real password does not.
            try:
                opened = reader.decrypt("")
            except (DependencyError, NotImplementedError) as exc:
                raise UnreadableFile(f"{display}: encrypted PDF ({_reason(exc)})") from exc
            if not opened:
                raise UnreadableFile(f"{display}: encrypted PDF (a password is required)")
        pieces: list[_Piece] = []
        for number, page in enumerate(reader.pages, start=1):
            text = _tidy_page(page.extract_text() or "")
            if text:
                pieces.append(_Piece(text, "Page", page=number))
        page_count = len(reader.pages)
        title = _pdf_title(reader)
    except UnreadableFile:
        raise
    except FileNotDecryptedError as exc:
        raise UnreadableFile(f"{display}: encrypted PDF (a password is required)") from exc
    except Exception as exc:  # pypdf raises many types on damaged files
        raise UnreadableFile(f"{display}: cannot parse PDF ({_reason(exc)})") from exc
    if not pieces:
        raise UnreadableFile(f"{display}: PDF has no text layer (scanned?); run OCR on it first")
    return title, pieces, {"pages": page_count}


def _tidy_page(text: str) -> str:
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _pdf_title(reader: Any) -> str | None:
    try:
        title = reader.metadata.title if reader.metadata else None
    except Exception:  # a damaged info dictionary is no reason to refuse the text
        return None
    if not isinstance(title, str):
        return None
    return " ".join(title.split()) or None


# --- JSON Lines (BEIR corpus format) ---------------------------------------------------------


def _load_jsonl(source: str, display: str, data: bytes) -> list[LoadedDocument]:
    """One document per record `{"_id", "title"?, "text", ...}`; blank lines are skipped.

    The stored text is `title + "\\n\\n" + text` (a Title element then a NarrativeText element)
    so the title is embedded with the body, as BEIR does, and offsets stay honest.
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
            pieces.append(_Piece(title, "Title"))
        if body:
            pieces.append(_Piece(body, "NarrativeText"))
        extra = {k: v for k, v in record.items() if k not in ("_id", "title", "text")}
        # No line number here: metadata is part of a document's hash, and moving a record within
        # its file must not make it look changed.
        metadata = {"format": "jsonl", "_id": doc_id, **extra}
        documents.append(_assemble(f"{source}#{doc_id}", title or None, pieces, metadata))
    if not documents:
        raise UnreadableFile(f"{display}: no records")
    return documents


def document_from_text(source: str, text: str, *, title: str | None = None,
                       metadata: dict[str, Any] | None = None) -> LoadedDocument:
    """A document given as text (the API's JSON body): paragraphs split at blank lines, the title
    first as its own element, as a JSON Lines record is."""
    pieces = [_Piece(title.strip(), "Title")] if title and title.strip() else []
    pieces += [_Piece(p.strip(), "NarrativeText") for p in re.split(r"\n\s*\n", text) if p.strip()]
    if not pieces:
        raise UnreadableFile(f"{source}: no text")
    return _assemble(source, title.strip() if title else None, pieces, {"format": "text", **(metadata or {})})


def _string_field(record: dict[str, Any], key: str, where: str) -> str:
    value = record.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise UnreadableFile(f"{where}: \"{key}\" must be a string, got {type(value).__name__}")
    return value.strip()


_LOADERS: dict[str, Callable[[str, bytes], tuple[str | None, list[_Piece], dict[str, Any]]]] = {
    "txt": _load_txt,
    "md": _load_md,
    "html": _load_html,
    "docx": _load_docx,
    "pdf": _load_pdf,
}
