"""Binary content is refused whatever the file's name says (415), before any parser reads it.

200 KB of random bytes named `.txt` was read as Windows-1252 text: 1,431 chunks of noise and two
minutes of work. Known binary formats are recognised by their first bytes; text formats must also
read as text: no NUL byte, and almost no control characters once decoded.
"""

from __future__ import annotations

from ingest.loaders.html_text import legacy_encoding

__all__ = ["binary_kind"]

# (first bytes, what they are, the format they are fine for)
_SIGNATURES: tuple[tuple[bytes, str, str | None], ...] = (
    (b"%PDF-", "a PDF document", "pdf"),
    (b"PK\x03\x04", "a zip archive", "docx"),
    (b"\x89PNG\r\n\x1a\n", "a PNG image", None),
    (b"\xff\xd8\xff", "a JPEG image", None),
    (b"GIF87a", "a GIF image", None),
    (b"GIF89a", "a GIF image", None),
    (b"\x1f\x8b", "gzip data", None),
    (b"BZh", "bzip2 data", None),
    (b"\xfd7zXZ\x00", "xz data", None),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive", None),
    (b"Rar!\x1a\x07", "a RAR archive", None),
    (b"\x7fELF", "an executable", None),
    (b"MZ", "a Windows executable", None),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an old Office document (.doc, .xls)", None),
    (b"SQLite format 3\x00", "an SQLite database", None),
)
_TEXT_FORMATS = frozenset({"txt", "md", "html", "jsonl"})
_SAMPLE = 64 * 1024
_ALLOWED_CONTROLS = frozenset("\t\n\r\f\v\x1b")
_MAX_CONTROL_SHARE = 0.01  # text has next to none; random bytes decode to about one in nine


def binary_kind(data: bytes, fmt: str) -> str | None:
    """What binary content `data` holds, if it is not the content format `fmt` expects; None
    when it may be read as `fmt`."""
    for magic, kind, fine_for in _SIGNATURES:
        if data.startswith(magic) and fmt != fine_for:
            # "MZ" and "BZh" also begin ordinary words: only trust them with a NUL close by.
            if magic in (b"MZ", b"BZh") and b"\x00" not in data[:_SAMPLE]:
                continue
            return kind
    if fmt not in _TEXT_FORMATS:
        return None
    sample = data[:_SAMPLE]
    if b"\x00" in sample:
        return "binary content (NUL bytes)"
    # A page in a legacy encoding it declares (Shift JIS, ...) is read in it, as its loader reads it.
    legacy = legacy_encoding(data) if fmt == "html" else "cp1252"
    try:
        text = sample.decode("utf-8")
    except UnicodeDecodeError as e:
        # A sample cut inside a character is still UTF-8; anything else is read as the legacy encoding.
        text = sample[:e.start].decode("utf-8") if e.start >= len(sample) - 3 else sample.decode(
            legacy, errors="replace")
    odd = sum(1 for ch in text if (ch < " " and ch not in _ALLOWED_CONTROLS) or ch == "\ufffd" or ch == "\x7f")
    if text and odd / len(text) > _MAX_CONTROL_SHARE:
        return "binary content (control characters)"
    return None
