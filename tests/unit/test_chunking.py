from dataclasses import dataclass

import pytest

from rag.chunking import Chunker
from rag.tokens import count_tokens


@dataclass
class El:
    text: str
    start: int
    end: int
    page: int | None = None
    section: str | None = None
    kind: str = "NarrativeText"


def document(*parts: tuple[str, str]) -> tuple[str, list[El]]:
    """Join (kind, text) parts the way the loaders do, with sections following titles."""
    text, elements, section = "", [], None
    for kind, piece in parts:
        if text:
            text += "\n\n"
        start = len(text)
        text += piece
        if kind == "Title":
            section = piece
        elements.append(El(piece, start, len(text), page=None, section=section, kind=kind))
    return text, elements


SENTENCE = "The committee reviewed the solar array output for the third quarter in detail. "


def test_chunks_are_exact_slices_within_the_token_budget():
    body = SENTENCE * 40
    text, els = document(("Title", "Quarterly review"), ("NarrativeText", body.strip()))
    chunks = Chunker(64, 16).chunk(text, els)
    assert len(chunks) > 5
    for c in chunks:
        assert text[c.start_char:c.end_char] == c.text
        assert c.token_count == count_tokens(c.text)
        assert c.token_count <= 64
        assert c.section == "Quarterly review"
    # Sentence boundaries: every chunk after the first starts at a sentence and ends with one.
    for c in chunks[1:]:
        assert c.text.startswith("The committee")
        assert c.text.endswith("detail.")
    # Overlap: consecutive chunks share whole sentences, at most 16 tokens of them.
    assert chunks[2].start_char < chunks[1].end_char


def test_zero_overlap_covers_the_text_once():
    text, els = document(("NarrativeText", (SENTENCE * 30).strip()))
    chunks = Chunker(50, 0).chunk(text, els)
    assert all(b.start_char >= a.end_char for a, b in zip(chunks, chunks[1:], strict=False))
    assert "".join(c.text for c in chunks).replace(" ", "") == text.replace(" ", "")


def test_heading_starts_a_new_chunk_when_the_current_one_is_half_full():
    text, els = document(("Title", "Part one"), ("NarrativeText", (SENTENCE * 4).strip()),
                         ("Title", "Part two"), ("NarrativeText", "Short closing words."))
    assert count_tokens(SENTENCE * 4) > 50  # more than half of the chunk size below
    chunks = Chunker(100, 0).chunk(text, els)
    assert [c.section for c in chunks] == ["Part one", "Part two"]
    assert chunks[1].text.startswith("Part two")


def test_a_sentence_longer_than_a_chunk_is_cut_at_token_boundaries():
    words = " ".join(f"word{i}" for i in range(400))
    text, els = document(("NarrativeText", words))
    chunks = Chunker(32, 0).chunk(text, els)
    assert len(chunks) >= 10
    assert all(c.token_count <= 32 for c in chunks)
    assert all(text[c.start_char:c.end_char] == c.text for c in chunks)
    assert chunks[-1].end_char == len(text)


def test_the_embedders_own_limit_splits_chunks_it_would_truncate():
    # An embedder that counts every character as a token, limited to 120: much stricter than
    # cl100k_base, so chunks of 100 cl100k tokens must be split further.
    text, els = document(("NarrativeText", (SENTENCE * 20).strip()))
    chunks = Chunker(100, 0, embedder_limit=120, embedder_count=lambda ts: [len(t) for t in ts]).chunk(text, els)
    assert chunks and all(len(c.text) <= 120 for c in chunks)
    assert all(text[c.start_char:c.end_char] == c.text for c in chunks)


def test_pages_follow_elements():
    one, two = (SENTENCE * 3).strip(), (SENTENCE * 3).strip()
    text = one + "\n\n" + two
    els = [El(one, 0, len(one), page=1), El(two, len(one) + 2, len(text), page=2)]
    chunks = Chunker(50, 0).chunk(text, els)
    assert [c.page for c in chunks] == [1, 2]


def test_bad_settings_are_refused():
    with pytest.raises(ValueError):
        Chunker(8, 0)
    with pytest.raises(ValueError):
        Chunker(64, 64)


def test_chunks_never_span_pages():
    one, two = "Short page one.", (SENTENCE * 2).strip()
    text = one + "\n\n" + two
    els = [El(one, 0, len(one), page=1), El(two, len(one) + 2, len(text), page=2)]
    chunks = Chunker(200, 32).chunk(text, els)
    assert [(c.page, c.text) for c in chunks] == [(1, one), (2, two)]


def _uncovered(text: str, chunks: list) -> str:
    covered = [False] * len(text)
    for c in chunks:
        covered[c.start_char:c.end_char] = [True] * (c.end_char - c.start_char)
    return "".join(ch for ch, seen in zip(text, covered, strict=True) if not seen).strip()


@pytest.mark.parametrize("where", ["before more text", "at the end", "before a new page"])
@pytest.mark.parametrize("overlap", [0, 2])
def test_a_unit_the_joined_chunk_cannot_hold_starts_the_next_chunk(where: str, overlap: int) -> None:
    # The units' own counts fit the budget exactly, but the blank lines between them are tokens
    # too: the chunk gives back its last paragraph, which must open the next chunk, not vanish
    # (given back before more text, at the document's end, or before a page break).
    paragraphs = ["Any thirty members may require the board to call a special general meeting",
                  "The board must then hold the meeting within six weeks",
                  "Changing the rules",
                  "Every other decision is taken by a simple majority"]
    if where == "at the end":
        paragraphs = paragraphs[:3]
    text, els = document(*(("NarrativeText", p) for p in paragraphs))
    if where == "before a new page":
        els = [El(e.text, e.start, e.end, page=1 if k < 3 else 2) for k, e in enumerate(els)]
    size = sum(count_tokens(p) for p in paragraphs[:3])
    assert count_tokens("\n\n".join(paragraphs[:3])) > size
    assert count_tokens(paragraphs[2]) > overlap  # too big to be carried over as overlap
    chunks = Chunker(size, overlap).chunk(text, els)
    assert _uncovered(text, chunks) == ""
    assert all(c.token_count <= size for c in chunks)
    assert any(c.text.startswith(paragraphs[2]) for c in chunks)


@pytest.mark.parametrize("size,overlap", [(24, 0), (40, 8), (64, 16), (100, 32)])
def test_every_word_is_in_some_chunk(size: int, overlap: int) -> None:
    words = "solar members board meeting share interest grant battery roof panel".split()
    # Some paragraphs end without a full stop, as headings and table rows do: their blank lines
    # are tokens of their own.
    paragraphs = [" ".join(words[(i * 7 + j) % len(words)] for j in range(3 + (i * 5) % 17))
                  + ("." if i % 3 else "") for i in range(60)]
    parts = [("Title" if i % 9 == 0 else "NarrativeText", p) for i, p in enumerate(paragraphs)]
    text, els = document(*parts)
    chunks = Chunker(size, overlap).chunk(text, els)
    assert _uncovered(text, chunks) == ""
    assert all(c.token_count <= size for c in chunks)
