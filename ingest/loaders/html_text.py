"""What unstructured does not give well from HTML: the page's declared encoding, its title and its
tables row by row.

Plain `html.parser` is enough for the last two and keeps them independent of unstructured's internals.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

__all__ = ["declared_charset", "html_title", "legacy_encoding", "table_text"]

# <meta charset="..."> or <meta http-equiv="Content-Type" content="text/html; charset=...">.
_META_CHARSET = re.compile(rb"""<meta\s[^>]*?charset\s*=\s*["']?\s*([A-Za-z0-9._:-]+)""", re.IGNORECASE)
# Browsers look for the declaration in the first 1024 bytes only.
_PRESCAN_BYTES = 1024
# The encoding labels browsers accept (the WHATWG Encoding Standard's, the common ones), each
# with the Python codec that decodes as a browser does: Latin-1 and ASCII pages as Windows-1252,
# Shift JIS with Microsoft's extensions (cp932), GB2312 and GBK as GB18030, EUC-KR as cp949; a byte
# stream can only be labelled UTF-16 by mistake. Any other label (a Python-only codec such as
# "rot13" or "zlib", or nonsense) is no declaration at all.
_BROWSER_ENCODING = {
    **dict.fromkeys(("utf-8", "utf8", "unicode-1-1-utf-8", "utf-16", "utf-16le", "utf-16be"), "utf-8"),
    **dict.fromkeys(("iso-8859-1", "latin1", "l1", "us-ascii", "ascii", "windows-1252", "cp1252", "x-cp1252"),
                    "cp1252"),
    **{f"windows-{n}": f"cp{n}" for n in range(1250, 1259)}, **{f"cp{n}": f"cp{n}" for n in range(1250, 1259)},
    **{f"iso-8859-{n}": f"iso8859_{n}" for n in (2, 3, 4, 5, 6, 7, 8, 10, 13, 14, 15, 16)},
    **dict.fromkeys(("iso-8859-9", "latin5"), "cp1254"),
    **dict.fromkeys(("iso-8859-11", "tis-620", "windows-874"), "cp874"),
    "koi8-r": "koi8_r", "koi8-u": "koi8_u", "ibm866": "cp866", "macintosh": "mac_roman",
    **dict.fromkeys(("shift_jis", "shift-jis", "sjis", "ms_kanji", "x-sjis", "windows-31j", "csshiftjis"), "cp932"),
    "euc-jp": "euc_jp", "iso-2022-jp": "iso2022_jp",
    **dict.fromkeys(("gb2312", "gbk", "gb18030", "x-gbk", "chinese", "csgb2312"), "gb18030"),
    **dict.fromkeys(("big5", "big5-hkscs", "x-x-big5"), "big5hkscs"),
    **dict.fromkeys(("euc-kr", "ks_c_5601-1987", "windows-949", "cseuckr"), "cp949"),
}
_COMMENT = re.compile(rb"<!--.*?(?:-->|$)", re.DOTALL)


def declared_charset(data: bytes) -> str | None:
    """The Python codec for the encoding an HTML page declares in a <meta> tag (not one inside a
    comment), read as browsers read it; None when the page declares none, or one browsers do not
    know."""
    found = _META_CHARSET.search(_COMMENT.sub(b"", data[:_PRESCAN_BYTES]))
    if found is None:
        return None
    label = found.group(1).decode("ascii").lower()
    return _BROWSER_ENCODING.get(re.sub(r"^iso8859", "iso-8859", label))


def legacy_encoding(data: bytes) -> str:
    """The encoding an HTML page that is not UTF-8 is read in: the one it declares, else
    Windows-1252 (as a browser does)."""
    return declared_charset(data) or "cp1252"


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
