"""PDFs, page by page from their text layer, with pypdf.

unstructured's PDF extra pulls in torch and still downloads models; the text layer is what a
searchable PDF carries anyway. Scanned PDFs without one are refused with a hint to OCR them.
"""

from __future__ import annotations

import io
import re
from typing import Any

from ingest.loaders.document import ParsedFile, Piece
from ingest.loaders.failures import failure_reason
from rag.errors import UnreadableFile

__all__ = ["load_pdf"]

# Typesetters set "fi", "ffl", ... as one glyph, which a PDF's text layer often gives as the
# ligature's own character (U+FB00..U+FB06): "ﬁnance" is not the word "finance" to any search or
# embedder. Only these are spelled out; other compatibility characters (², ½, ...) mean what they show.
_LIGATURES = str.maketrans({"\ufb00": "ff", "\ufb01": "fi", "\ufb02": "fl", "\ufb03": "ffi", "\ufb04": "ffl",
                            "\ufb05": "st", "\ufb06": "st"})


def load_pdf(display: str, data: bytes) -> ParsedFile:
    """One `Page` piece per page with text, numbered by its real page; `pages` in the metadata."""
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
                raise UnreadableFile(f"{display}: encrypted PDF ({failure_reason(exc)})") from exc
            if not opened:
                raise UnreadableFile(f"{display}: encrypted PDF (a password is required)")
        pieces: list[Piece] = []
        for number, page in enumerate(reader.pages, start=1):
            text = _tidy_page(page.extract_text() or "")
            if text:
                pieces.append(Piece(text, "Page", page=number))
        page_count = len(reader.pages)
        title = _pdf_title(reader)
    except UnreadableFile:
        raise
    except FileNotDecryptedError as exc:
        raise UnreadableFile(f"{display}: encrypted PDF (a password is required)") from exc
    except Exception as exc:  # pypdf raises many types on damaged files
        raise UnreadableFile(f"{display}: cannot parse PDF ({failure_reason(exc)})") from exc
    if not pieces:
        raise UnreadableFile(f"{display}: PDF has no text layer (scanned?); run OCR on it first")
    return ParsedFile(title, pieces, {"pages": page_count})


def _tidy_page(text: str) -> str:
    lines = [line.rstrip() for line in text.translate(_LIGATURES).replace("\r\n", "\n").split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _pdf_title(reader: Any) -> str | None:
    try:
        title = reader.metadata.title if reader.metadata else None
    except Exception:  # a damaged info dictionary is no reason to refuse the text
        return None
    if not isinstance(title, str):
        return None
    return " ".join(title.split()) or None
