"""A tiny PDF writer for tests and sample files: pages of text in the standard Helvetica fonts.

Real PDFs with a real text layer, small enough to build in a test, with no PDF library that
writes text. Each page is a list of lines; a line starting with "# " is set in bold as a heading.
With `ligatures=True`, "ffi", "fi" and "fl" are set as single ligature glyphs, as typesetters set
them, and the fonts' ToUnicode maps say which characters those are (U+FB03, U+FB01, U+FB02).
"""

from __future__ import annotations

import textwrap

_LEFT, _TOP, _WIDTH, _HEIGHT = 72, 720, 612, 792


# Codes WinAnsiEncoding leaves unused, given to the ligatures (longest first: "ffi" before "fi").
_LIGATURES = ((b"ffi", b"\x1d", "FB03"), (b"fi", b"\x1e", "FB01"), (b"fl", b"\x1f", "FB02"))
_TO_UNICODE = (
    b"/CIDInit /ProcSet findresource begin 12 dict begin begincmap\n"
    b"/CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def\n"
    b"/CMapName /Adobe-Identity-UCS def /CMapType 2 def\n"
    b"1 begincodespacerange <00> <FF> endcodespacerange\n"
    + b"%d beginbfchar\n" % len(_LIGATURES)
    + b"".join(b"<%02X> <%s>\n" % (code[0], unicode.encode()) for _, code, unicode in _LIGATURES)
    + b"endbfchar\nendcmap CMapName currentdict /CIDInit defineresource pop end end"
)


def _escape(text: str, ligatures: bool = False) -> bytes:
    raw = text.encode("cp1252")
    raw = raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")
    for letters, code, _ in _LIGATURES if ligatures else ():
        raw = raw.replace(letters, code)
    return raw


def _content(lines: list[str], wrap: int, ligatures: bool = False) -> bytes:
    ops = [b"BT", b"/F1 11 Tf", b"15 TL", f"{_LEFT} {_TOP} Td".encode()]
    for line in lines:
        if line.startswith("# "):
            ops += [b"/F2 14 Tf", b"(" + _escape(line[2:], ligatures) + b") Tj", b"T*", b"T*", b"/F1 11 Tf"]
            continue
        if not line.strip():
            ops.append(b"T*")
            continue
        for part in textwrap.wrap(line, wrap) or [""]:
            ops += [b"(" + _escape(part, ligatures) + b") Tj", b"T*"]
    ops.append(b"ET")
    return b"\n".join(ops)


def make_pdf(pages: list[list[str]], *, title: str | None = None, wrap: int = 88, ligatures: bool = False) -> bytes:
    """Bytes of a PDF with one page per entry of `pages`; an empty list makes a blank page."""
    objects: list[bytes] = []  # object n is objects[n - 1]

    def add(body: bytes) -> int:
        objects.append(body)
        return len(objects)

    catalog = add(b"")  # filled in once the page tree exists
    tree = add(b"")
    to_unicode = b""
    if ligatures:
        cmap = add(b"<< /Length %d >>\nstream\n" % len(_TO_UNICODE) + _TO_UNICODE + b"\nendstream")
        to_unicode = b" /ToUnicode %d 0 R" % cmap
    fonts = (
        b"<< /F1 << /Type /Font /Subtype /Type1 /BaseFont /Helvetica"
        b" /Encoding /WinAnsiEncoding" + to_unicode + b" >>"
        b" /F2 << /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold"
        b" /Encoding /WinAnsiEncoding" + to_unicode + b" >> >>"
    )
    kids = []
    for lines in pages:
        stream = _content(lines, wrap, ligatures) if lines else b""
        content = add(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
        kids.append(
            add(
                b"<< /Type /Page /Parent %d 0 R /MediaBox [0 0 %d %d] /Resources << /Font %s >>"
                b" /Contents %d 0 R >>" % (tree, _WIDTH, _HEIGHT, fonts, content)
            )
        )
    objects[catalog - 1] = b"<< /Type /Catalog /Pages %d 0 R >>" % tree
    objects[tree - 1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (
        b" ".join(b"%d 0 R" % k for k in kids),
        len(kids),
    )
    info = add(b"<< /Title (" + _escape(title) + b") >>") if title else None

    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    trailer = b"<< /Size %d /Root %d 0 R" % (len(objects) + 1, catalog)
    if info:
        trailer += b" /Info %d 0 R" % info
    out += b"trailer\n" + trailer + b" >>\nstartxref\n%d\n%%%%EOF\n" % xref
    return bytes(out)
