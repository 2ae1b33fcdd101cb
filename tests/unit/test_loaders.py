"""Loaders: every format gives the right text, elements, offsets, sections and pages; bad files
give UnsupportedFile or UnreadableFile naming the file and the reason; nothing goes on the network.
"""

from __future__ import annotations

import functools
import importlib.metadata
import io
import json
import os
import textwrap
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docx
import pytest
from pypdf import PdfWriter
from support.minipdf import make_pdf
from support.paths import CORPUS
from support.paths import ROOT as REPO

from ingest.loaders import SUPPORTED_SUFFIXES, Element, LoadedDocument, load_bytes, load_file
from rag.errors import UnreadableFile, UnsupportedFile


def check_offsets(doc: LoadedDocument) -> None:
    """Every element's span points at its text, in order, with a blank line between elements."""
    assert doc.elements
    previous_end = None
    for element in doc.elements:
        assert doc.text[element.start : element.end] == element.text
        if previous_end is not None:
            assert doc.text[previous_end : element.start] == "\n\n"
        previous_end = element.end
    assert doc.elements[0].start == 0
    assert doc.elements[-1].end == len(doc.text)


def summary(doc: LoadedDocument) -> list[tuple[str, str, str | None]]:
    return [(e.kind, e.text, e.section) for e in doc.elements]


def write(tmp_path: Path, name: str, data: bytes | str) -> Path:
    path = tmp_path / name
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


# --- formats -----------------------------------------------------------------------------------


def test_markdown(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "guide.md",
        textwrap.dedent(
            """\
            # Home composting

            A compost heap needs greens and browns.

            ## Moisture

            - Keep it as damp as a wrung-out sponge.
            - Turn it weekly

            | Material | Type |
            |---|---|
            | Grass | green |
            | Straw | brown |

            Too wet heaps **smell** of ammonia.
            """
        ),
    )
    [doc] = load_file(path)
    assert doc.source == str(path.resolve())
    assert doc.title == "Home composting"
    assert doc.metadata == {"format": "md"}
    assert summary(doc) == [
        ("Title", "Home composting", "Home composting"),
        ("NarrativeText", "A compost heap needs greens and browns.", "Home composting"),
        ("Title", "Moisture", "Moisture"),
        ("ListItem", "Keep it as damp as a wrung-out sponge.", "Moisture"),
        ("ListItem", "Turn it weekly", "Moisture"),
        ("Table", "Material | Type\nGrass | green\nStraw | brown", "Moisture"),
        ("NarrativeText", "Too wet heaps smell of ammonia.", "Moisture"),
    ]
    assert all(e.page is None for e in doc.elements)
    check_offsets(doc)
    assert doc.text.startswith("Home composting\n\nA compost heap needs greens and browns.\n\n")


def test_plain_text(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "notes.txt",
        "COMPOSTING BASICS\n=================\n\n"
        "A heap is turned every week.\nIt heats up within\ntwo days.\n\n"
        "Why does it smell?\n\n"
        "Too much grass and not enough air.\n",
    )
    [doc] = load_file(path)
    assert doc.title == "COMPOSTING BASICS"
    # The "=====" rule is dropped; wrapped lines of a paragraph become one element; a question
    # heading stays a title; one-line sentences are prose, not titles.
    assert summary(doc) == [
        ("Title", "COMPOSTING BASICS", "COMPOSTING BASICS"),
        (
            "NarrativeText",
            "A heap is turned every week. It heats up within two days.",
            "COMPOSTING BASICS",
        ),
        ("Title", "Why does it smell?", "Why does it smell?"),
        ("NarrativeText", "Too much grass and not enough air.", "Why does it smell?"),
    ]
    check_offsets(doc)


def test_plain_text_not_utf8_is_read_as_windows_1252(tmp_path: Path) -> None:
    path = write(tmp_path, "legacy.txt", "A share costs £50 – no more.".encode("cp1252"))
    [doc] = load_file(path)
    assert doc.text == "A share costs £50 – no more."


def test_html(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "page.htm",
        """<!DOCTYPE html><html><head><title>  Composting
        guide </title><script>var tracking = 1;</script></head><body>
        <nav><a href="/">Home</a></nav>
        <h1>Composting</h1>
        <p>Worms do most of the work in a cool heap.</p>
        <h2>What to add</h2>
        <ul><li>Vegetable peelings</li><li>Shredded cardboard</li></ul>
        <table><tr><th>Week</th><th>Task</th></tr><tr><td>1</td><td>Build the heap</td></tr></table>
        </body></html>""",
    )
    [doc] = load_file(path)
    assert doc.title == "Composting guide"
    assert doc.metadata == {"format": "html"}
    assert summary(doc) == [
        ("Title", "Composting", "Composting"),
        ("NarrativeText", "Worms do most of the work in a cool heap.", "Composting"),
        ("Title", "What to add", "What to add"),
        ("ListItem", "Vegetable peelings", "What to add"),
        ("ListItem", "Shredded cardboard", "What to add"),
        ("Table", "Week | Task\n1 | Build the heap", "What to add"),
    ]
    check_offsets(doc)


def make_docx(title: str | None = "Worm bins") -> bytes:
    document = docx.Document()
    if title:
        document.core_properties.title = title
    document.add_heading("Keeping worms", 0)
    document.add_paragraph("Tiger worms eat about half their weight a day.")
    document.add_heading("Feeding", 1)
    document.add_paragraph("Chop the scraps small", style="List Bullet")
    table = document.add_table(rows=2, cols=2)
    for row, values in enumerate([("Food", "Amount"), ("Peel", "1 cup")]):
        for col, value in enumerate(values):
            table.cell(row, col).text = value
    document.add_paragraph("Never add meat or dairy.")
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def test_docx(tmp_path: Path) -> None:
    path = write(tmp_path, "worms.docx", make_docx())
    [doc] = load_file(path)
    assert doc.title == "Worm bins"  # from the core properties
    assert doc.metadata == {"format": "docx"}
    assert summary(doc) == [
        ("Title", "Keeping worms", "Keeping worms"),
        ("NarrativeText", "Tiger worms eat about half their weight a day.", "Keeping worms"),
        ("Title", "Feeding", "Feeding"),
        ("ListItem", "Chop the scraps small", "Feeding"),
        ("Table", "Food | Amount\nPeel | 1 cup", "Feeding"),
        ("NarrativeText", "Never add meat or dairy.", "Feeding"),
    ]
    check_offsets(doc)


def test_docx_without_core_title_takes_its_leading_heading(tmp_path: Path) -> None:
    [doc] = load_file(write(tmp_path, "worms.docx", make_docx(title=None)))
    assert doc.title == "Keeping worms"


def test_pdf_pages_and_blank_pages(tmp_path: Path) -> None:
    pages = [
        ["# Harvest", "Finished compost is dark and crumbly."],
        [],  # a blank page: skipped, yet later pages keep their real numbers
        ["Sieve it before use (10 mm mesh)."],
    ]
    path = write(tmp_path, "harvest.pdf", make_pdf(pages, title="Harvest notes"))
    [doc] = load_file(path)
    assert doc.title == "Harvest notes"
    assert doc.metadata == {"format": "pdf", "pages": 3}
    assert [(e.kind, e.page, e.text, e.section) for e in doc.elements] == [
        ("Page", 1, "Harvest\nFinished compost is dark and crumbly.", None),
        ("Page", 3, "Sieve it before use (10 mm mesh).", None),
    ]
    check_offsets(doc)


def test_pdf_encrypted_with_empty_user_password_opens(tmp_path: Path) -> None:
    """Encryption that only restricts printing or copying is no reason to refuse a PDF."""
    writer = PdfWriter(clone_from=io.BytesIO(make_pdf([["Open to all readers."]])))
    writer.encrypt(user_password="", owner_password="owner", algorithm="RC4-128")
    out = io.BytesIO()
    writer.write(out)
    [doc] = load_bytes("restricted.pdf", out.getvalue())
    assert doc.text == "Open to all readers."


def test_jsonl(tmp_path: Path) -> None:
    records = [
        {"_id": "d1", "title": "Greens", "text": "Grass is rich in nitrogen.", "tags": ["n"]},
        {"_id": 2, "text": "Browns add carbon."},
        {"_id": "d3", "title": "Title only", "text": ""},
    ]
    lines = [json.dumps(records[0]), "", "   ", json.dumps(records[1]), json.dumps(records[2])]
    path = write(tmp_path, "corpus.jsonl", "\n".join(lines) + "\n")
    docs = load_file(path)
    resolved = path.resolve()
    assert [d.source for d in docs] == [f"{resolved}#d1", f"{resolved}#2", f"{resolved}#d3"]

    first, second, third = docs
    assert first.title == "Greens"
    assert first.text == "Greens\n\nGrass is rich in nitrogen."
    assert summary(first) == [
        ("Title", "Greens", "Greens"),
        ("NarrativeText", "Grass is rich in nitrogen.", "Greens"),
    ]
    assert first.metadata == {"format": "jsonl", "_id": "d1", "tags": ["n"]}

    assert second.title is None
    assert second.text == "Browns add carbon."
    assert summary(second) == [("NarrativeText", "Browns add carbon.", None)]
    assert second.metadata == {"format": "jsonl", "_id": "2"}

    assert summary(third) == [("Title", "Title only", "Title only")]
    for doc in docs:
        check_offsets(doc)


# --- uploads -----------------------------------------------------------------------------------


def test_load_bytes_uses_the_name_as_source() -> None:
    [doc] = load_bytes("uploads/notes.md", b"# Notes\n\nA heap needs air.\n")
    assert doc.source == "uploads/notes.md"
    assert doc.title == "Notes"
    [record] = load_bytes("c.jsonl", b'{"_id": "x", "text": "Air."}\n')
    assert record.source == "c.jsonl#x"


def test_load_bytes_sniffs_a_pdf_or_docx_without_a_suffix() -> None:
    [pdf] = load_bytes("scan", make_pdf([["Sniffed by its header."]]))
    assert pdf.metadata["format"] == "pdf"
    assert pdf.elements[0].page == 1
    [word] = load_bytes("attachment.bin", make_docx())
    assert word.metadata["format"] == "docx"


def test_suffixes_are_case_insensitive(tmp_path: Path) -> None:
    [doc] = load_file(write(tmp_path, "SHOUT.MD", "# Loud\n\nStill read.\n"))
    assert doc.title == "Loud"


# --- errors ------------------------------------------------------------------------------------


def test_supported_suffixes() -> None:
    assert SUPPORTED_SUFFIXES == {
        ".txt", ".md", ".markdown", ".html", ".htm", ".docx", ".pdf", ".jsonl"
    }


def test_unsupported_suffix_names_the_file_and_the_supported_types(tmp_path: Path) -> None:
    path = write(tmp_path, "sheet.xlsx", b"PK\x03\x04whatever")
    with pytest.raises(UnsupportedFile) as caught:
        load_file(path)
    message = str(caught.value)
    assert "sheet.xlsx" in message and ".xlsx" in message
    for suffix in SUPPORTED_SUFFIXES:
        assert suffix in message
    with pytest.raises(UnsupportedFile, match="mystery.bin"):
        load_bytes("mystery.bin", b"just some bytes")


@pytest.mark.parametrize("name", ["empty.txt", "empty.md", "empty.html", "empty.docx",
                                  "empty.pdf", "empty.jsonl"])
def test_empty_file(tmp_path: Path, name: str) -> None:
    with pytest.raises(UnreadableFile, match=rf"{name}: empty file"):
        load_file(write(tmp_path, name, b""))


def test_whitespace_only_file_is_empty(tmp_path: Path) -> None:
    with pytest.raises(UnreadableFile, match="blank.md: empty file"):
        load_file(write(tmp_path, "blank.md", "  \n\n\t\n"))


def test_html_without_text(tmp_path: Path) -> None:
    html = "<html><head><script>x()</script></head><body></body></html>"
    path = write(tmp_path, "bare.html", html)
    with pytest.raises(UnreadableFile, match="bare.html: no extractable text"):
        load_file(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(UnreadableFile, match="gone.txt: cannot read file"):
        load_file(tmp_path / "gone.txt")


def test_binary_content_in_a_text_file(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedFile, match="blob.txt: a PNG image, not a TXT file"):
        load_file(write(tmp_path, "blob.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"))


def test_encrypted_pdf(tmp_path: Path) -> None:
    writer = PdfWriter(clone_from=io.BytesIO(make_pdf([["Board minutes."]])))
    writer.encrypt(user_password="secret", owner_password="owner", algorithm="RC4-128")
    out = io.BytesIO()
    writer.write(out)
    path = write(tmp_path, "minutes.pdf", out.getvalue())
    reason = r"encrypted PDF \(a password is required\)"
    with pytest.raises(UnreadableFile, match=rf"minutes.pdf: {reason}"):
        load_file(path)


def test_pdf_without_text_layer(tmp_path: Path) -> None:
    writer = PdfWriter()
    writer.add_blank_page(width=612, height=792)
    writer.add_blank_page(width=612, height=792)
    out = io.BytesIO()
    writer.write(out)
    with pytest.raises(UnreadableFile, match=r"scan.pdf: PDF has no text layer \(scanned\?\)"):
        load_file(write(tmp_path, "scan.pdf", out.getvalue()))


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"%PDF-1.4\n" + bytes(range(256)) * 4, "cannot parse PDF"),
        (make_pdf([["Cut short."]])[:200], "cannot parse PDF"),
        (b"this was never a pdf", r"cannot parse PDF \(no %PDF header\)"),
    ],
    ids=["garbage", "truncated", "not-a-pdf"],
)
def test_corrupt_pdf(tmp_path: Path, data: bytes, reason: str) -> None:
    with pytest.raises(UnreadableFile, match=rf"broken.pdf: {reason}"):
        load_file(write(tmp_path, "broken.pdf", data))


def _zip_without_document() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("readme.txt", "not a word document")
    return out.getvalue()


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"this is plain text, not a zip", r"cannot parse DOCX \(not a zip archive\)"),
        (b"PK\x03\x04" + b"\x00" * 200, r"cannot parse DOCX \("),
        (_zip_without_document(), r"cannot parse DOCX \("),
        (make_docx()[:1000], r"cannot parse DOCX \("),
    ],
    ids=["not-zip", "zip-header-only", "zip-without-document", "truncated"],
)
def test_corrupt_docx(tmp_path: Path, data: bytes, reason: str) -> None:
    with pytest.raises(UnreadableFile, match=rf"broken.docx: {reason}"):
        load_file(write(tmp_path, "broken.docx", data))


@pytest.mark.parametrize(
    ("lines", "reason"),
    [
        (['{"_id": "a", "text": "fine"}', '{"_id": "b", "text": '],
         r"line 2: invalid JSON \(Expecting value at column 22\)"),
        (['{"_id": "a", "text": "fine"}', "", "[1, 2]"],
         r"line 3: expected a JSON object, got list"),
        (['{"title": "t", "text": "no id"}'], r"line 1: missing or invalid \"_id\""),
        (['{"_id": "a", "text": "one"}', '{"_id": "a", "text": "two"}'],
         r"line 2: duplicate _id 'a' \(first seen on line 1\)"),
        (['{"_id": "a", "title": " ", "text": ""}'],
         r"line 1: record 'a' has no text and no title"),
        (['{"_id": "a", "text": 5}'], r"line 1: \"text\" must be a string, got int"),
        (["", "  "], r"empty file"),
    ],
    ids=["bad-json", "not-object", "no-id", "duplicate-id", "no-text", "text-not-string", "blank"],
)
def test_bad_jsonl(tmp_path: Path, lines: list[str], reason: str) -> None:
    path = write(tmp_path, "corpus.jsonl", "\n".join(lines) + "\n")
    with pytest.raises(UnreadableFile, match=rf"corpus.jsonl: {reason}"):
        load_file(path)


# --- offline -----------------------------------------------------------------------------------


def test_markdown_and_html_partition_with_the_network_guard_on(tmp_path: Path) -> None:
    """The autouse `no_network` fixture raises on any connection or name lookup beyond loopback;
    partitioning completes under it, so unstructured neither downloads nor phones home."""
    import socket

    from support.offline import NetworkAccessAttempted

    with pytest.raises(NetworkAccessAttempted):
        socket.getaddrinfo("github.com", 443)  # the guard is really on
    [md] = load_file(write(tmp_path, "a.md", "# Offline\n\nNo model is downloaded here.\n"))
    [html] = load_file(write(tmp_path, "a.html", "<h1>Offline</h1><p>Nor here.</p>"))
    assert md.elements[1].kind == html.elements[1].kind == "NarrativeText"


def test_the_spacy_model_is_never_loaded_or_downloaded(monkeypatch: pytest.MonkeyPatch) -> None:
    """unstructured gets our blank pipeline; spacy.load (which would look for en_core_web_sm and,
    failing, make unstructured download it) is never reached."""
    import spacy
    from unstructured.nlp import tokenize

    load_bytes("warm.md", b"# Warm up\n\nImports happen here.\n")  # make sure the patch is in place

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("spacy.load was called: unstructured is looking for a spaCy model")

    monkeypatch.setattr(spacy, "load", forbidden)
    tokenize._get_nlp.cache_clear()
    tokenize._process_cached.cache_clear()
    tokenize.pos_tag.cache_clear()
    [doc] = load_bytes("fresh.txt", b"A new sentence that needs tagging\n")
    assert doc.elements
    assert tokenize._get_nlp().meta["name"] == "rag_blank_sentencizer"
    with pytest.raises(RuntimeError, match="download is disabled"):
        tokenize._install_spacy_model()


def _hook_ignored_by_get_nlp(tokenize: Any) -> Callable[[], Any]:
    """A `_get_nlp` as a release might write it: loads elsewhere, never via _load_spacy_model."""
    import spacy

    @functools.lru_cache(maxsize=1)
    def _get_nlp() -> Any:
        return spacy.load("en_core_web_sm")

    return _get_nlp


def _hook_looked_up_but_ignored(tokenize: Any) -> Callable[[], Any]:
    """A `_get_nlp` that names _load_spacy_model (so the static check passes) yet returns another
    pipeline: only the check after the swap can catch it."""
    import spacy

    @functools.lru_cache(maxsize=1)
    def _get_nlp() -> Any:
        tokenize._load_spacy_model  # noqa: B018  (looked up, then ignored)
        return spacy.blank("en")

    return _get_nlp


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda mp, tok: mp.delattr(tok, "_load_spacy_model"),
         r"there is no function _load_spacy_model\(\)"),
        (lambda mp, tok: mp.delattr(tok, "_install_spacy_model"),
         r"there is no function _install_spacy_model\(\)"),
        (lambda mp, tok: mp.setattr(tok, "_get_nlp", lambda: None),
         r"_get_nlp\(\) is no longer an lru_cache-wrapped function"),
        (lambda mp, tok: mp.setattr(tok, "_get_nlp", _hook_ignored_by_get_nlp(tok)),
         r"_get_nlp\(\) no longer loads the pipeline through _load_spacy_model\(\)"),
        (lambda mp, tok: mp.setattr(tok, "_get_nlp", _hook_looked_up_but_ignored(tok)),
         r"_get_nlp\(\) returned the spaCy pipeline 'pipeline', not 'rag_blank_sentencizer'"),
    ],
    ids=["load-removed", "install-removed", "get-nlp-uncached", "get-nlp-bypasses", "wrong-pipeline"],
)
def test_the_spacy_swap_fails_loudly_when_unstructured_changes_its_hooks(
    monkeypatch: pytest.MonkeyPatch, change: Callable[[pytest.MonkeyPatch, Any], None], problem: str
) -> None:
    """The error names the installed unstructured, what changed and what was expected, and surfaces
    as itself from a load, not disguised as an unreadable file."""
    from unstructured.nlp import tokenize

    from ingest.loaders import unstructured_setup
    from ingest.loaders.unstructured_setup import UnstructuredIncompatible

    change(monkeypatch, tokenize)
    version = importlib.metadata.version("unstructured")
    with pytest.raises(UnstructuredIncompatible, match=problem) as caught:
        unstructured_setup.use_blank_spacy_pipeline()
    message = str(caught.value)
    assert message.startswith(f"unstructured {version}")
    assert "Expected _load_spacy_model() and _install_spacy_model()" in message
    assert "(unstructured 0.27)" in message

    unstructured_setup.partitioners.cache_clear()  # as in a process that has not parsed yet
    try:
        with pytest.raises(UnstructuredIncompatible, match=problem):
            load_bytes("notes.md", b"# Notes\n\nA heap needs air.\n")
    finally:
        unstructured_setup.partitioners.cache_clear()


def test_prepare_offline_sets_the_opt_outs_once_and_keeps_what_the_user_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from ingest.loaders.unstructured_setup import prepare_offline

    for name in ("DO_NOT_TRACK", "SCARF_NO_ANALYTICS", "UNSTRUCTURED_DISABLE_NOTICE"):
        monkeypatch.setenv(name, "placeholder")  # so the teardown restores the original state
        monkeypatch.delenv(name)
    monkeypatch.setenv("SCARF_NO_ANALYTICS", "yes")
    prepare_offline()
    prepare_offline()
    assert os.environ["DO_NOT_TRACK"] == "1"
    assert os.environ["SCARF_NO_ANALYTICS"] == "yes"
    assert os.environ["UNSTRUCTURED_DISABLE_NOTICE"] == "1"


# --- the sample corpus -------------------------------------------------------------------------


def test_sample_corpus_loads_in_every_format() -> None:
    files = sorted(p for p in CORPUS.iterdir() if p.is_file())
    assert {p.suffix for p in files} == {".md", ".txt", ".html", ".docx", ".pdf", ".jsonl"}
    shipped = [p for p in REPO.joinpath("corpora").rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in shipped) < 200_000
    documents = {p.name: load_file(p) for p in files}
    for docs in documents.values():
        for doc in docs:
            check_offsets(doc)
            assert doc.title

    [report] = documents["annual-report-2024.pdf"]
    assert report.metadata["pages"] == 3
    assert [e.page for e in report.elements] == [1, 2, 3]
    assert "June 39,500" in report.elements[1].text

    faq = documents["faq.jsonl"]
    assert len(faq) == 8
    assert all(d.metadata["category"] for d in faq)

    [safety] = documents["safety-and-maintenance.docx"]
    steps = [e.text for e in safety.elements if e.kind == "ListItem"]
    assert len(steps) == 6 and "AC isolator" in steps[1]
    assert {e.section for e in safety.elements if e.kind == "Table"} == {"Maintenance schedule"}


def test_element_is_frozen() -> None:
    element = Element(text="x", start=0, end=1, page=None, section=None, kind="Title")
    with pytest.raises(AttributeError):
        element.text = "y"  # type: ignore[misc]
