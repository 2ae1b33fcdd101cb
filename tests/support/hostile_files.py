"""Small files that cost a parser a lot, built in the test that uses them (nothing is checked in)."""

from __future__ import annotations

import io
import zipfile

import docx

__all__ = ["docx_bomb"]


def docx_bomb(xml_mb: int) -> bytes:
    """A valid DOCX whose `word/document.xml` holds about `xml_mb` MB of paragraphs: a few hundred
    kilobytes zipped, since the paragraphs repeat."""
    plain = io.BytesIO()
    document = docx.Document()
    document.add_paragraph("The first paragraph.")
    document.save(plain)
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(plain.getvalue())) as source, \
            zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as bomb:
        for info in source.infolist():
            data = source.read(info.filename)
            if info.filename == "word/document.xml":
                head, tail = data.split(b"<w:body>", 1)
                paragraph = b"<w:p><w:r><w:t>" + b"lorem ipsum dolor sit amet " * 40 + b"</w:t></w:r></w:p>"
                body = paragraph * (xml_mb * 1024 * 1024 // len(paragraph))
                data = head + b"<w:body>" + body + tail
            bomb.writestr(info.filename, data)
    return out.getvalue()
