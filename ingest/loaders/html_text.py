"""What unstructured does not give well from HTML: the page's declared encoding, its title and its
tables row by row.

Plain `html.parser` is enough for the last two and keeps them independent of unstructured's internals.
"""

from __future__ import annotations

import codecs
import re
from html.parser import HTMLParser

__all__ = ["declared_charset", "html_title", "table_text"]

# <meta charset="..."> or <meta http-equiv="Content-Type" content="text/html; charset=...">.
_META_CHARSET = re.compile(rb"""<meta\s[^>]*?charset\s*=\s*["']?\s*([A-Za-z0-9._:-]+)""", re.IGNORECASE)
# Browsers look for the declaration in the first 1024 bytes only.
_PRESCAN_BYTES = 1024
# Labels browsers read as another encoding: Latin-1 and ASCII pages as Windows-1252, and a byte
# stream can only be labelled UTF-16 by mistake.
_BROWSER_ENCODING = {"latin-1": "cp1252", "iso8859-1": "cp1252", "ascii": "cp1252",
                     "utf-16": "utf-8", "utf-16-le": "utf-8", "utf-16-be": "utf-8"}


def declared_charset(data: bytes) -> str | None:
    """The Python codec for the encoding an HTML page declares in a <meta> tag, read as browsers
    read it; None when the page declares none, or one Python does not have."""
    found = _META_CHARSET.search(data[:_PRESCAN_BYTES])
    if found is None:
        return None
    try:
        name = codecs.lookup(found.group(1).decode("ascii")).name
    except LookupError:
        return None
    return _BROWSER_ENCODING.get(name, name)


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


def html_title(html: str) -> str | None:
    """The text of the page's first <title>, whitespace collapsed; None when there is none."""
    parser = _TitleParser()
    parser.feed(html)
    parser.close()
    title = " ".join("".join(parser.parts).split())
    return title or None


class _TableParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.captions: list[str] = []
        self.rows: list[list[str]] = []
        self.cell: list[str] | None = None
        self.caption: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "caption":
            self.caption = []
        elif tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            if not self.rows:
                self.rows.append([])
            self.cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self.cell is not None:
            self.rows[-1].append(" ".join("".join(self.cell).split()))
            self.cell = None
        elif tag == "caption" and self.caption is not None:
            self.captions.append(" ".join("".join(self.caption).split()))
            self.caption = None

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.cell.append(data)
        elif self.caption is not None:
            self.caption.append(data)


def table_text(html: str) -> str:
    """A table as its caption, if any, then one line per row with cells separated by ' | ', so rows
    stay readable.

    unstructured's own table text runs every cell together with spaces, which loses which value
    belongs to which row.
    """
    parser = _TableParser()
    parser.feed(html)
    parser.close()
    lines = [caption for caption in parser.captions if caption]
    lines += [" | ".join(row) for row in parser.rows if any(row)]
    return "\n".join(lines)
