"""DOCX files written from WordprocessingML by hand, for markup python-docx cannot produce: content
controls, tracked changes, fields, text boxes, footnotes. Built in the test that uses them."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Sequence

import docx

__all__ = ["NAMESPACES", "docx_with_body", "paragraph", "run", "table"]

NAMESPACES = (
    'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main" '
    'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships" '
    'xmlns:wp="http://schemas.openxmlformats.org/drawingml/2006/wordprocessingDrawing" '
    'xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main" '
    'xmlns:wps="http://schemas.microsoft.com/office/word/2010/wordprocessingShape" '
    'xmlns:mc="http://schemas.openxmlformats.org/markup-compatibility/2006" '
    'xmlns:v="urn:schemas-microsoft-com:vml"'
)
"""The namespace declarations every hand-written part carries."""

_NOTES = {
    "footnotes": ("footnote", "footnotes"),
    "endnotes": ("endnote", "endnotes"),
}


def run(text: str) -> str:
    """A run of text, its spaces kept."""
    return f'<w:r><w:t xml:space="preserve">{text}</w:t></w:r>'


def paragraph(*content: str) -> str:
    """A paragraph of runs (or any paragraph content)."""
    return "<w:p>" + "".join(content) + "</w:p>"


def table(rows: list[list[str]]) -> str:
    """A table whose cells hold the given block content (paragraphs, tables)."""
    cells = ("<w:tr>" + "".join(f"<w:tc>{cell}</w:tc>" for cell in row) + "</w:tr>" for row in rows)
    return "<w:tbl>" + "".join(cells) + "</w:tbl>"


def docx_with_body(body: str, *, footnotes: Sequence[str] = (), endnotes: Sequence[str] = ()) -> bytes:
    """A DOCX (python-docx's default template) whose body is `body`, with the given footnotes and
    endnotes (each the block content of one note, numbered from 1)."""
    template = io.BytesIO()
    docx.Document().save(template)
    notes = {kind: texts for kind, texts in (("footnotes", footnotes), ("endnotes", endnotes)) if texts}
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(template.getvalue())) as source, zipfile.ZipFile(out, "w") as target:
        for info in source.infolist():
            data = source.read(info.filename)
            if info.filename == "word/document.xml":
                data = _part("document", f"<w:body>{body}<w:sectPr/></w:body>")
            elif info.filename == "word/_rels/document.xml.rels":
                data = data.replace(b"</Relationships>", b"".join(
                    f'<Relationship Id="rId{kind}" Type="http://schemas.openxmlformats.org/officeDocument/'
                    f'2006/relationships/{kind}" Target="{kind}.xml"/>'.encode() for kind in notes)
                    + b"</Relationships>")
            elif info.filename == "[Content_Types].xml":
                data = data.replace(b"</Types>", b"".join(
                    f'<Override PartName="/word/{kind}.xml" ContentType="application/'
                    f'vnd.openxmlformats-officedocument.wordprocessingml.{kind}+xml"/>'.encode()
                    for kind in notes) + b"</Types>")
            target.writestr(info, data)
        for kind, texts in notes.items():
            note, root = _NOTES[kind]
            # Word always writes the separator notes first; they hold no text.
            body_xml = (f'<w:{note} w:type="separator" w:id="-1"><w:p><w:r><w:separator/></w:r></w:p></w:{note}>'
                        + "".join(f'<w:{note} w:id="{n}">{text}</w:{note}>' for n, text in enumerate(texts, 1)))
            target.writestr(f"word/{kind}.xml", _part(root, body_xml))
    return out.getvalue()


def _part(root: str, content: str) -> bytes:
    return (f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
            f"<w:{root} {NAMESPACES}>{content}</w:{root}>").encode()
