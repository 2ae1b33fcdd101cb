"""Text unstructured does not give well from HTML: the page title and tables row by row.

Plain `html.parser` is enough for both and keeps them independent of unstructured's internals.
"""

from __future__ import annotations

from html.parser import HTMLParser

__all__ = ["html_title", "table_text"]


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
