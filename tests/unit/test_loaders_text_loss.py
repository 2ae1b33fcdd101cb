"""Text a user put in a file must reach the loaded document: found by auditing each loader's words
against an independent extraction of the same file. One test per kind of markup that was lost."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from ingest.loaders import LoadedDocument, load_bytes


def words(text: str) -> Counter[str]:
    return Counter(w.lower() for w in re.findall(r"\w+", text))


def load_one(name: str, data: str | bytes) -> LoadedDocument:
    [doc] = load_bytes(name, data.encode() if isinstance(data, str) else data)
    return doc


def lost_words(doc: LoadedDocument, expected: str) -> Counter[str]:
    """The words of `expected` missing from the document's text (a Counter, empty when none)."""
    return words(expected) - words(doc.text)


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


def test_keeping_details_and_figures_fails_loudly_when_unstructured_changes_its_parser(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from unstructured.partition.html import parser

    from ingest.loaders.unstructured_setup import UnstructuredIncompatible, read_disclosures_and_figures

    monkeypatch.delattr(parser, "element_class_lookup")
    with pytest.raises(UnstructuredIncompatible, match=r"no longer has the element_class_lookup registry"):
        read_disclosures_and_figures()
