"""Which loader reads a file: by its name's suffix, or for uploads by the content's magic bytes."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from pathlib import Path

from ingest.loaders.document import LoadedDocument, ParsedFile, assemble
from ingest.loaders.jsonl import JsonLines, load_jsonl, read_jsonl
from ingest.loaders.pdf import load_pdf
from ingest.loaders.text import load_docx, load_html, load_md, load_txt
from rag.errors import UnreadableFile, UnsupportedFile

__all__ = ["SUPPORTED_SUFFIXES", "is_jsonl", "load_bytes", "load_file", "read_jsonl_file"]

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

# Formats whose file is one document; JSON Lines, a document per record, is dispatched apart.
_SINGLE_DOCUMENT_LOADERS: dict[str, Callable[[str, bytes], ParsedFile]] = {
    "txt": load_txt,
    "md": load_md,
    "html": load_html,
    "docx": load_docx,
    "pdf": load_pdf,
}


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


def load_bytes(name: str, data: bytes, *, source: str | None = None) -> list[LoadedDocument]:
    """Load an upload given its file name and content; `source` (what identifies the document in
    its collection) defaults to the name.

    The type comes from the name's suffix; a name without a known suffix is accepted when the
    content is recognisably a PDF or a DOCX.
    """
    fmt = _format_for_suffix(name) or _sniff(data)
    if fmt is None:
        raise UnsupportedFile(_unsupported_message(name))
    return _load(source or name, name, fmt, data)


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
        return load_jsonl(source, display, data)
    parsed = _SINGLE_DOCUMENT_LOADERS[fmt](display, data)
    if not parsed.pieces:
        raise UnreadableFile(f"{display}: no extractable text")
    return [assemble(source, parsed.title, parsed.pieces, {"format": fmt, **parsed.metadata})]


def is_jsonl(path: Path) -> bool:
    """Whether the file is read as JSON Lines (a document per record)."""
    return _format_for_suffix(path.name) == "jsonl"


def read_jsonl_file(path: Path) -> JsonLines:
    """A JSON Lines file's good records as documents and its bad ones named by line (`read_jsonl`);
    raises UnreadableFile only when the file cannot be read or is not UTF-8."""
    resolved = Path(path).resolve()
    try:
        data = resolved.read_bytes()
    except OSError as exc:
        raise UnreadableFile(f"{path}: cannot read file ({exc.strerror or exc})") from exc
    return read_jsonl(str(resolved), str(path), data)
