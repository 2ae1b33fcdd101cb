"""WordprocessingML whose text unstructured's DOCX partitioner reads past, rewritten before it runs.

unstructured reads a paragraph's text from its direct runs and hyperlinks, and a body's blocks from
its direct paragraphs and tables. Word keeps text a reader sees in more places than that, and every
one of them was silently missing from the index. Each is rewritten into that plain shape:

- wrappers around runs, cells, rows or blocks are replaced by their content: tracked insertions and
  moves (`w:ins`, `w:moveTo`), content controls (`w:sdt`), simple fields (`w:fldSimple`, whose
  content is the field's shown result), smart tags, custom XML and bidirectional runs;
- a text box's paragraphs follow the paragraph it is anchored in; a box Word wrote twice (a
  DrawingML choice with a VML fallback, `mc:AlternateContent`) is taken once;
- footnotes and endnotes are appended to the body, in order;
- a page or column break inside a paragraph also breaks the line, so the words either side of it
  stay two words;
- ruby (a phonetic guide over East Asian text) gives its base text, an equation (OMML) its
  words and numbers, separated by spaces.

Left out on purpose: deleted text (`w:del`, `w:moveFrom`), reviewers' comments, headers and
footers (the partitioner reports them as page furniture, dropped in `text.py`), and what Word
generates in a content control: a table of contents or of figures, and placeholder text.
"""

from __future__ import annotations

import io
import posixpath
import shutil
import zipfile

from lxml import etree

__all__ = ["expose_hidden_text"]

_W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
_M = "http://schemas.openxmlformats.org/officeDocument/2006/math"
_MC = "http://schemas.openxmlformats.org/markup-compatibility/2006"
_PACKAGE_RELS = "http://schemas.openxmlformats.org/package/2006/relationships"
_DOCUMENT_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument"
_NOTES_RELS = {
    "http://schemas.openxmlformats.org/officeDocument/2006/relationships/footnotes": "footnote",
    "http://schemas.openxmlformats.org/officeDocument/2006/relationships/endnotes": "endnote",
}


def _w(tag: str) -> str:
    return f"{{{_W}}}{tag}"


_WRAPPERS = (*(_w(tag) for tag in (
    "ins", "moveTo", "sdt", "sdtContent", "fldSimple", "smartTag", "customXml", "dir", "bdo")), f"{{{_M}}}oMathPara")
# A wrapper's own properties, which go with it.
_WRAPPER_PROPERTIES = frozenset((*(_w(tag) for tag in ("sdtPr", "sdtEndPr", "smartTagPr", "customXmlPr")),
                                 f"{{{_M}}}oMathParaPr"))
# What a note may hold that points into the notes part's own relationships, which the body does
# not have: pictures and embedded objects go, a hyperlink keeps its text.
_NOTE_OBJECTS = (_w("drawing"), _w("pict"), _w("object"))

# Untrusted XML: no entities expanded, nothing fetched, lxml's default depth and size limits.
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True)


def expose_hidden_text(data: bytes) -> bytes:
    """The DOCX with its hidden text rewritten as plain paragraphs and runs (see the module's
    docstring). A package this cannot read is returned unchanged, for the partitioner to read or
    to refuse in its own words."""
    try:
        return _rewrite(data)
    except MemoryError:
        raise
    except Exception:  # noqa: BLE001  # damaged, encrypted, oddly compressed: the partitioner says what
        return data


def _rewrite(data: bytes) -> bytes:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        part = _target(archive, "_rels/.rels", "", _DOCUMENT_REL)
        if part is None:
            return data
        document = etree.fromstring(archive.read(part), _PARSER)
        body = document.find(_w("body"))
        if body is None:
            return data
        notes_rels = posixpath.join(posixpath.dirname(part), "_rels", posixpath.basename(part) + ".rels")
        notes = [_note_blocks(archive, note_part, kind) for rel_type, kind in _NOTES_RELS.items()
                 if (note_part := _target(archive, notes_rels, posixpath.dirname(part), rel_type))]
        note_blocks = [block for blocks in notes for block in blocks]
        _append(body, note_blocks)
        changes = (len(note_blocks) + _drop_generated_controls(document) + _hoist_text_boxes(document)
                   + _separate_at_breaks(document) + _lift_ruby_bases(document) + _equations_as_runs(document)
                   + _unwrap(document))
        if not changes:
            return data  # most documents: no copy of the package (it may hold large pictures)
        rewritten = etree.tostring(document, xml_declaration=True, encoding="UTF-8", standalone=True)
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w") as copy:
            for info in archive.infolist():
                # Stored, not compressed again: the copy is read once, in memory, straight away.
                # Each part is streamed across, not read whole first.
                entry = zipfile.ZipInfo(info.filename, date_time=info.date_time)
                entry.compress_type = zipfile.ZIP_STORED
                if info.filename == part:
                    copy.writestr(entry, rewritten)
                    continue
                with archive.open(info) as source, copy.open(entry, "w") as target:
                    shutil.copyfileobj(source, target, 1 << 20)
    return out.getvalue()


def _target(archive: zipfile.ZipFile, rels: str, base: str, rel_type: str) -> str | None:
    """The part a relationships file points at with `rel_type`, as a name in the archive."""
    if rels not in archive.namelist():
        return None
    for rel in etree.fromstring(archive.read(rels), _PARSER).iter(f"{{{_PACKAGE_RELS}}}Relationship"):
        target = rel.get("Target")
        if rel.get("Type") == rel_type and target and rel.get("TargetMode") != "External":
            name = target.lstrip("/") if target.startswith("/") else posixpath.normpath(posixpath.join(base, target))
            return name if name in archive.namelist() else None
    return None


def _note_blocks(archive: zipfile.ZipFile, part: str, kind: str) -> list[etree._Element]:
    """The paragraphs and tables of every real note (not Word's separators) in the notes part."""
    blocks: list[etree._Element] = []
    for note in etree.fromstring(archive.read(part), _PARSER).iter(_w(kind)):
        if note.get(_w("type")) not in (None, "normal"):
            continue  # separator and continuation marks: no text
        for element in list(note.iter(*_NOTE_OBJECTS)):
            _remove(element)
        for link in list(note.iter(_w("hyperlink"))):
            _replace_by_children(link)
        blocks.extend(note)
    return blocks


# Content controls whose text Word generates rather than the author writes: a table of contents or
# of figures repeats the headings with page numbers (it would take the document's title and compete
# with the sections themselves), and an empty control shows placeholder text ("Click or tap here
# to enter text."). Dropped whole, as a web page's navigation is.
_GENERATED_GALLERIES = frozenset(("Table of Contents", "Table of Figures"))


def _drop_generated_controls(document: etree._Element) -> int:
    dropped = 0
    for control in list(document.iter(_w("sdt"))):
        properties = control.find(_w("sdtPr"))
        if properties is None or control.getparent() is None:
            continue
        gallery = properties.find(f"{_w('docPartObj')}/{_w('docPartGallery')}")
        if (gallery is not None and gallery.get(_w("val")) in _GENERATED_GALLERIES) \
                or properties.find(_w("showingPlcHdr")) is not None:
            _remove(control)
            dropped += 1
    return dropped


def _hoist_text_boxes(document: etree._Element) -> int:
    # Decided before any box moves: a fallback is a duplicate while its choice's box is in place.
    boxes = [box for box in document.iter(_w("txbxContent")) if not _is_duplicate_fallback(box)]
    for box in boxes:
        anchor = next(box.iterancestors(_w("p")), None)
        if anchor is None:
            continue
        for block in reversed(list(box)):
            anchor.addnext(block)
        _remove(box)
    return len(boxes)


def _is_duplicate_fallback(box: etree._Element) -> bool:
    """Whether the box is the VML fallback of a DrawingML text box that is read instead."""
    fallback = next(box.iterancestors(f"{{{_MC}}}Fallback"), None)
    if fallback is None:
        return False
    alternate = fallback.getparent()
    return alternate is not None and any(
        choice.find(f".//{_w('txbxContent')}") is not None for choice in alternate.iter(f"{{{_MC}}}Choice"))


def _append(body: etree._Element, blocks: list[etree._Element]) -> None:
    # The body's own section properties must stay its last child.
    last = body[-1] if len(body) else None
    for block in blocks:
        if last is not None and last.tag == _w("sectPr"):
            last.addprevious(block)
        else:
            body.append(block)


def _separate_at_breaks(document: etree._Element) -> int:
    # python-docx reads a page or column break as nothing, a plain break as a line break.
    breaks = [brk for brk in document.iter(_w("br")) if brk.get(_w("type")) in ("page", "column")]
    for brk in breaks:
        brk.addnext(etree.Element(_w("br")))
    return len(breaks)


def _lift_ruby_bases(document: etree._Element) -> int:
    """Each ruby's base runs take the place of the run holding it; the guide text goes."""
    rubies = list(document.iter(_w("ruby")))
    for ruby in rubies:
        holder = ruby.getparent()
        base = ruby.find(_w("rubyBase"))
        if holder is None:
            continue
        for base_run in reversed(list(base) if base is not None else []):
            holder.addnext(base_run)
        holder.remove(ruby)
    return len(rubies)


def _equations_as_runs(document: etree._Element) -> int:
    """Each equation becomes a run of its text pieces (`m:t`) separated by spaces: a fraction's
    numerator and denominator, for instance, must not run together."""
    # An equation inside another is replaced with it, whole.
    equations = [equation for equation in document.iter(f"{{{_M}}}oMath")
                 if next(equation.iterancestors(f"{{{_M}}}oMath"), None) is None]
    for equation in equations:
        pieces = " ".join(" ".join(t.text.split()) for t in equation.iter(f"{{{_M}}}t") if t.text and t.text.strip())
        replacement = etree.Element(_w("r"))
        text = etree.SubElement(replacement, _w("t"))
        text.text = f" {pieces} "
        text.set("{http://www.w3.org/XML/1998/namespace}space", "preserve")
        equation.addprevious(replacement)
        _remove(equation)
    return len(equations)


def _unwrap(document: etree._Element) -> int:
    wrappers = list(document.iter(*_WRAPPERS))
    for wrapper in wrappers:
        for prop in [child for child in wrapper if child.tag in _WRAPPER_PROPERTIES]:
            wrapper.remove(prop)
        _replace_by_children(wrapper)
    return len(wrappers)


def _replace_by_children(element: etree._Element) -> None:
    for child in list(element):
        element.addprevious(child)
    _remove(element)


def _remove(element: etree._Element) -> None:
    parent = element.getparent()
    if parent is not None:
        parent.remove(element)
