"""What an upload may hold, checked on the raw body before it is parsed, and the names it keeps.

Litestar's multipart parser refuses more than its part limit, or a header line over 4 KB (a long
file name), with a bare "Request Entity Too Large"; these checks come first and name the setting.
A file's name becomes its display name (the document's `source`): the last path component with
control and format characters (right-to-left overrides among them) removed; the name as sent is
kept in the document's metadata as `upload_name`.
"""

from __future__ import annotations

import re
import unicodedata

from rag.errors import LimitExceeded, PayloadTooLarge

__all__ = ["check_multipart", "display_name"]

_BOUNDARY = re.compile(r'boundary="?([^";,]+)"?', re.IGNORECASE)
_FILENAME = re.compile(rb'filename\*?=(?:"((?:[^"\\\r\n]|\\.)*)"|([^;\r\n]*))', re.IGNORECASE)
_HEADERS_AT_MOST = 64 * 1024  # a part's headers end within this (Litestar's own limit is 4 KB a line)
UNNAMED = "(unnamed file)"


def check_multipart(body: bytes, content_type: str, *, max_files: int, max_name_chars: int) -> None:
    """Refuse a multipart body of more than `max_files` parts (413) or with a file name longer
    than `max_name_chars` (400). A body without a boundary is left to the parser to refuse."""
    found = _BOUNDARY.search(content_type)
    if not found:
        return
    delimiter = b"--" + found.group(1).encode("latin-1")
    starts = []
    at = body.find(delimiter)
    while at != -1:
        starts.append(at)
        at = body.find(delimiter, at + len(delimiter))
    parts = max(0, len(starts) - 1)  # the last delimiter closes the body
    if parts > max_files:
        raise PayloadTooLarge(f"the upload has {parts:,} parts; the limit is {max_files:,} files per upload "
                              "(RAG_MAX_UPLOAD_FILES)", param="files")
    for start in starts[:-1]:
        end = body.find(b"\r\n\r\n", start, start + _HEADERS_AT_MOST)
        name = _FILENAME.search(body, start, end if end != -1 else start + _HEADERS_AT_MOST)
        if name is None:
            continue
        raw = (name.group(1) if name.group(1) is not None else name.group(2)).decode("utf-8", errors="replace")
        if len(raw) > max_name_chars:
            raise LimitExceeded(f"a file name has {len(raw):,} characters; the limit is {max_name_chars:,} "
                                f"(RAG_MAX_FILENAME_CHARS): {raw[:40]}…", param="files")


def display_name(raw: str | None) -> str:
    """The name a document is shown and stored under: the last path component of `raw`, without
    control or format characters (bidi overrides, zero-width marks) and surrounding spaces."""
    last = re.split(r"[\\/]", raw or "")[-1]
    cleaned = "".join(ch for ch in last if unicodedata.category(ch) not in ("Cc", "Cf")).strip()
    return cleaned if cleaned not in ("", ".", "..") else UNNAMED
