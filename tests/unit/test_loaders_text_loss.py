"""Text a user put in a file must reach the loaded document: found by auditing each loader's words
against an independent extraction of the same file. One test per kind of markup that was lost."""

from __future__ import annotations

import io
import re
import zipfile
from collections import Counter
from pathlib import Path
from typing import Any

import lxml.html
import pytest
from lxml import etree
from support.minipdf import make_pdf
from support.paths import CORPUS
from support.wordml import docx_with_body, paragraph, run

from ingest.loaders import LoadedDocument, load_bytes, load_file


def words(text: str) -> Counter[str]:
    return Counter(w.lower() for w in re.findall(r"\w+", text))


def load_one(name: str, data: str | bytes) -> LoadedDocument:
    [doc] = load_bytes(name, data.encode() if isinstance(data, str) else data)
    return doc


def lost_words(doc: LoadedDocument, expected: str) -> Counter[str]:
    """The words of `expected` missing from the document's text (a Counter, empty when none)."""
    return words(expected) - words(doc.text)


# --- the sample corpus ---------------------------------------------------------------------------

# Left out on purpose (README, "What of a file is searchable"): furniture and what is not shown.
_UNSHOWN_HTML = {"head", "script", "style", "nav", "footer"}
_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"


def _html_words(data: bytes) -> str:
    parts: list[str] = []

    def walk(element: Any) -> None:
        if isinstance(element.tag, str) and element.tag.lower() not in _UNSHOWN_HTML:
            parts.append(f" {element.text or ''} ")
            for child in element:
                walk(child)
        parts.append(f" {element.tail or ''} ")

    walk(lxml.html.fromstring(data))
    return "".join(parts)


def _docx_words(data: bytes) -> str:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        root = etree.fromstring(archive.read("word/document.xml"))
    return " ".join(t.text or "" for t in root.iter(f"{_W}t"))


@pytest.mark.parametrize("name", sorted(p.name for p in CORPUS.iterdir() if p.suffix in (".html", ".docx", ".md", ".txt")))
def test_sample_corpus_loses_no_word(name: str) -> None:
    """Every word of each sample file, read independently of the loaders (lxml for HTML, the XML
    of a DOCX, the raw text of Markdown and plain text), is in its loaded text."""
    data = (CORPUS / name).read_bytes()
    independent = {".html": _html_words, ".docx": _docx_words}.get(Path(name).suffix, bytes.decode)(data)
    [doc] = load_file(CORPUS / name)
    assert not lost_words(doc, independent)


# --- HTML --------------------------------------------------------------------------------------


def test_html_table_caption_is_kept() -> None:
    doc = load_one("prices.html", "<body><table><caption>Feed-in tariff by year</caption>"
                                  "<tr><th>Year</th><th>Pence</th></tr><tr><td>2020</td><td>5.2</td></tr>"
                                  "</table></body>")
    assert doc.elements[0].text == "Feed-in tariff by year\nYear | Pence\n2020 | 5.2"


def test_html_details_and_summary_are_kept() -> None:
    """FAQ pages often put each question in a <summary> and its answer inside <details>."""
    doc = load_one("faq.html", "<body><h1>Questions</h1>"
                               "<details><summary>Can I visit the arrays?</summary>"
                               "<p>Yes, on the open days each June.</p></details></body>")
    assert [(e.kind, e.text) for e in doc.elements] == [
        ("Title", "Questions"),
        ("Title", "Can I visit the arrays?"),
        ("NarrativeText", "Yes, on the open days each June."),
    ]


def test_html_figure_and_its_caption_are_kept() -> None:
    doc = load_one("quote.html", "<body><figure><blockquote>Sunlight is the best disinfectant.</blockquote>"
                                 "<figcaption>Louis Brandeis, 1913</figcaption></figure>"
                                 "<p>The accounts are published.</p></body>")
    assert [e.text for e in doc.elements] == [
        "Sunlight is the best disinfectant.", "Louis Brandeis, 1913", "The accounts are published."]


def test_markdown_details_block_is_kept() -> None:
    doc = load_one("faq.md", "# Questions\n\n<details><summary>Is the money safe?</summary>\n"
                             "Shares are not covered by the FSCS.\n</details>\n")
    assert not lost_words(doc, "Questions Is the money safe? Shares are not covered by the FSCS.")


def test_html_in_its_declared_legacy_encoding_is_read_in_it() -> None:
    """A page that is not UTF-8 was read as Windows-1252 whatever it declared: Cyrillic became
    "Ñîëíå÷íàÿ", and Shift JIS was refused as binary. Browsers read the <meta> charset."""
    russian = ('<html><head><meta charset="windows-1251"></head>'
               "<body><p>Солнечная энергия кооператива.</p></body></html>")
    assert load_one("ru.html", russian.encode("cp1251")).text == "Солнечная энергия кооператива."
    japanese = ('<html><head><meta http-equiv="Content-Type" content="text/html; charset=Shift_JIS">'
                "</head><body><p>太陽光発電の協同組合です。</p></body></html>")
    assert load_one("ja.html", japanese.encode("shift_jis")).text == "太陽光発電の協同組合です。"


def test_html_declared_latin_1_is_read_as_browsers_do_and_utf_8_wins() -> None:
    """Browsers read a page declared ISO-8859-1 as Windows-1252 (the curly quotes); a page that is
    valid UTF-8 is UTF-8 whatever it declares, as before."""
    latin = '<meta charset="iso-8859-1"><p>\u201cCaf\u00e9\u201d</p>'
    assert load_one("fr.html", latin.encode("cp1252")).text == "\u201cCaf\u00e9\u201d"
    assert load_one("fr.html", latin.encode("utf-8")).text == "\u201cCaf\u00e9\u201d"


def test_html_declared_in_a_label_browsers_do_not_know_is_no_declaration() -> None:
    """Only the web's encoding labels count: a Python-only codec ("rot13", "zlib") or nonsense in
    <meta charset> is ignored, not an error; a declaration inside a comment is no declaration."""
    for label in ("rot13", "zlib", "undefined"):
        page = f'<meta charset="{label}"><p>\u201cCaf\u00e9\u201d</p>'.encode("cp1252")
        assert load_one("odd.html", page).text == "\u201cCaf\u00e9\u201d"
    commented = '<!-- <meta charset="koi8-r"> --><meta charset="windows-1252"><p>Caf\u00e9</p>'
    assert load_one("c.html", commented.encode("cp1252")).text == "Caf\u00e9"


def test_html_shift_jis_with_microsoft_extensions_is_read_as_browsers_do() -> None:
    """Browsers read Shift_JIS as Microsoft's cp932: circled digits and the wave dash are text."""
    page = '<meta charset="Shift_JIS"><p>①番 ～ 髙橋さんの太陽光発電。</p>'
    assert load_one("ja.html", page.encode("cp932")).text == "①番 ～ 髙橋さんの太陽光発電。"


def test_keeping_details_and_figures_fails_loudly_when_unstructured_changes_its_parser(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from unstructured.partition.html import parser

    from ingest.loaders.unstructured_setup import UnstructuredIncompatible, read_disclosures_and_figures

    monkeypatch.delattr(parser, "element_class_lookup")
    with pytest.raises(UnstructuredIncompatible, match=r"no longer has the element_class_lookup registry"):
        read_disclosures_and_figures()


# --- DOCX --------------------------------------------------------------------------------------

_TEXT_BOX = ('<w:r><w:pict><v:shape><v:textbox><w:txbxContent>{0}</w:txbxContent></v:textbox></v:shape>'
             '</w:pict></w:r>')


def docx_texts(body: str, **notes: list[str]) -> list[str]:
    return [e.text for e in load_one("report.docx", docx_with_body(body, **notes)).elements]


def test_docx_tracked_insertions_are_kept_and_deletions_left_out() -> None:
    """A document sent with changes not yet accepted shows its insertions; they are its text."""
    body = paragraph(run("The fund pays "), "<w:ins><w:r><w:t>£500</w:t></w:r></w:ins>",
                     "<w:del><w:r><w:delText>£300</w:delText></w:r></w:del>", run(" a year."))
    assert docx_texts(body) == ["The fund pays £500 a year."]


def test_docx_content_controls_are_kept() -> None:
    """Templates and forms hold their text in content controls (w:sdt): around blocks, inside a
    paragraph, around table rows and cells."""
    body = ("<w:sdt><w:sdtPr><w:alias w:val='Summary'/></w:sdtPr><w:sdtContent>"
            + paragraph(run("Block control text.")) + "</w:sdtContent></w:sdt>"
            + paragraph(run("Owner: "), "<w:sdt><w:sdtContent>" + run("Wrenfield") + "</w:sdtContent></w:sdt>")
            + "<w:tbl><w:sdt><w:sdtContent><w:tr><w:tc>" + paragraph(run("Row control"))
            + "</w:tc><w:sdt><w:sdtContent><w:tc>" + paragraph(run("Cell control"))
            + "</w:tc></w:sdtContent></w:sdt></w:tr></w:sdtContent></w:sdt></w:tbl>")
    assert docx_texts(body) == ["Block control text.", "Owner: Wrenfield", "Row control | Cell control"]


def test_docx_table_of_contents_and_placeholder_text_are_left_out() -> None:
    """What Word generates in a content control is not the author's text: a table of contents (it
    would also take the document's title) and an empty control's placeholder."""
    toc = ("<w:sdt><w:sdtPr><w:docPartObj><w:docPartGallery w:val='Table of Contents'/></w:docPartObj>"
           "</w:sdtPr><w:sdtContent>" + paragraph(run("Contents")) + paragraph(run("Introduction\t1"))
           + "</w:sdtContent></w:sdt>")
    placeholder = ("<w:sdt><w:sdtPr><w:showingPlcHdr/></w:sdtPr><w:sdtContent>"
                   + paragraph(run("Click or tap here to enter text.")) + "</w:sdtContent></w:sdt>")
    heading = "<w:p><w:pPr><w:pStyle w:val='Heading1'/></w:pPr>" + run("Introduction") + "</w:p>"
    doc = load_one("report.docx", docx_with_body(toc + heading + paragraph(run("The arrays work.")) + placeholder))
    assert [e.text for e in doc.elements] == ["Introduction", "The arrays work."]
    assert doc.title == "Introduction"


def test_a_damaged_docx_is_refused_in_the_loaders_words() -> None:
    """A package the rewrite cannot read (here a part marked encrypted) goes to the partitioner
    as it came, which refuses it as unreadable: no Python error escapes."""
    from rag.errors import UnreadableFile

    data = bytearray(docx_with_body(paragraph(run("Text."), "<w:ins>" + run(" more") + "</w:ins>")))
    # Set the "encrypted" flag of every entry in the central directory.
    at = 0
    while (at := data.find(b"PK\x01\x02", at)) != -1:
        data[at + 8] |= 1
        at += 4
    with pytest.raises(UnreadableFile, match="report.docx"):
        load_one("report.docx", bytes(data))


def test_docx_simple_fields_smart_tags_and_custom_xml_keep_their_text() -> None:
    body = paragraph(run("Printed "), '<w:fldSimple w:instr=" DATE "><w:r><w:t>3 May 2024</w:t></w:r></w:fldSimple>',
                     run(" at "), '<w:smartTag w:element="place"><w:r><w:t>Wrenfield</w:t></w:r></w:smartTag>',
                     run(" by "), '<w:customXml w:element="author"><w:r><w:t>the board</w:t></w:r></w:customXml>',
                     run("."))
    assert docx_texts(body) == ["Printed 3 May 2024 at Wrenfield by the board."]


def test_docx_text_boxes_are_kept_once() -> None:
    """A text box follows the paragraph it is anchored in. Word writes a modern text box twice (a
    DrawingML choice and a VML fallback): its text is kept once."""
    modern = ('<w:r><mc:AlternateContent><mc:Choice Requires="wps"><w:drawing><wp:anchor><a:graphic>'
              '<a:graphicData><wps:wsp><wps:txbx><w:txbxContent>{0}</w:txbxContent></wps:txbx></wps:wsp>'
              '</a:graphicData></a:graphic></wp:anchor></w:drawing></mc:Choice><mc:Fallback>'
              + _TEXT_BOX + '</mc:Fallback></mc:AlternateContent></w:r>')
    body = (paragraph(run("Anchor one."), modern.format(paragraph(run("Modern box text."))))
            + paragraph(run("Anchor two."), _TEXT_BOX.format(paragraph(run("Legacy box text."))))
            + paragraph(run("Last paragraph.")))
    assert docx_texts(body) == ["Anchor one.", "Modern box text.", "Anchor two.", "Legacy box text.",
                                "Last paragraph."]


def test_docx_footnotes_and_endnotes_are_kept_at_the_end() -> None:
    body = paragraph(run("Output fell in June."), '<w:r><w:footnoteReference w:id="1"/></w:r>')
    texts = docx_texts(body, footnotes=[paragraph(run("An inverter was replaced."))],
                       endnotes=[paragraph(run("Figures are unaudited."))])
    assert texts == ["Output fell in June.", "An inverter was replaced.", "Figures are unaudited."]


def test_docx_page_and_column_breaks_inside_a_paragraph_separate_its_words() -> None:
    """Word shows the text after a page break on the next page; read without a separator the last
    word before it and the first after it became one word no search finds."""
    body = paragraph(run("Summer output"), '<w:r><w:br w:type="page"/></w:r>', run("Winter output"),
                     '<w:r><w:br w:type="column"/><w:t>Spring output</w:t></w:r>')
    assert words(" ".join(docx_texts(body))) == words("Summer output Winter output Spring output")


def test_docx_ruby_keeps_its_base_text() -> None:
    """East Asian text with a phonetic guide: the base text is the text, the guide is left out."""
    body = paragraph('<w:r><w:ruby><w:rubyPr/><w:rt><w:r><w:t>たいよう</w:t></w:r></w:rt>'
                     '<w:rubyBase><w:r><w:t>太陽</w:t></w:r></w:rubyBase></w:ruby></w:r>', run("光発電"))
    assert docx_texts(body) == ["太陽光発電"]


def test_docx_equations_keep_their_words() -> None:
    body = paragraph(run("Yield: "), '<m:oMath xmlns:m="http://schemas.openxmlformats.org/officeDocument/2006/math">'
                     "<m:f><m:num><m:r><m:t>Output</m:t></m:r></m:num><m:den><m:r><m:t>Capacity</m:t></m:r>"
                     "</m:den></m:f></m:oMath>", run(" per year."))
    assert words(" ".join(docx_texts(body))) == words("Yield Output Capacity per year")


# --- PDF ---------------------------------------------------------------------------------------


def test_pdf_ligatures_are_read_as_their_letters() -> None:
    """Typeset PDFs set "fi", "fl" and "ffi" as one glyph whose text is U+FB01..: "ﬁnance" is not
    the word "finance" to any search."""
    pdf = make_pdf([["# Finance", "The office files an efficient, fluent report."]], ligatures=True)
    assert b"(x \x1e) Tj" in make_pdf([["x fi"]], ligatures=True)  # one glyph code, not "f" and "i"
    doc = load_one("report.pdf", pdf)
    assert doc.text == "Finance\nThe office files an efficient, fluent report."


# --- every format ------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "data"), [
    ("page.html", "<p>Wrenfield&#x2060;s co&shy;operative is com&shy;munity owned.</p>"),
    ("notes.txt", "Wrenfield\u2060s co\u00adoperative is com\u00admunity owned.\n"),
    ("notes.md", "Wrenfield\ufeffs co\u00adoperative is com\u00admunity owned.\n"),
], ids=["html", "txt", "md"])
def test_soft_hyphens_and_word_joiners_do_not_split_words(name: str, data: str) -> None:
    """A soft hyphen (HTML's &shy;, often put in by hyphenating editors) is invisible unless a line
    breaks there, and a word joiner always is; the word search splits at both, so "cooperative"
    did not find "co\u00adoperative"."""
    assert load_one(name, data).text == "Wrenfields cooperative is community owned."


def test_docx_without_hidden_text_is_not_copied() -> None:
    """The rewrite copies the whole package (pictures included) only when it has something to
    rewrite; an ordinary document, or a package it cannot read, is handed on as it came."""
    from ingest.loaders.docx_markup import expose_hidden_text

    ordinary = docx_with_body(paragraph(run("Plain text.")), footnotes=[])
    assert expose_hidden_text(ordinary) is ordinary
    assert expose_hidden_text(b"PK\x03\x04 broken") == b"PK\x03\x04 broken"
    with_insertion = docx_with_body(paragraph("<w:ins><w:r><w:t>New</w:t></w:r></w:ins>"))
    assert expose_hidden_text(with_insertion) != with_insertion
