"""Split a document's text into chunks measured in cl100k_base tokens.

Chunks are exact slices of the document's stored text (so `text[start_char:end_char]` is the
chunk and citations can point into the document). Boundaries fall between elements (paragraphs,
headings, list items) where possible, then between sentences, and only inside a sentence that is
itself longer than a chunk. Every chunk is also checked against the collection's embedder, which
may count tokens differently (MiniLM reads 256 word pieces): a chunk it would truncate is split.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from rag.records import ChunkDraft
from rag.tokens import DEFAULT_ENCODING, get_encoding

# Chosen by measurement on SciFact's train split (see README, "Chunking defaults").
DEFAULT_CHUNK_SIZE = 200
DEFAULT_CHUNK_OVERLAP = 32

# A sentence ends at . ! ? (and any closing quotes or brackets) followed by white space, or at a
# line break that ends a paragraph or a heading.
_SENTENCE_END = re.compile(r"[.!?][\"'”’)\]]*\s+|\n\s*\n|\n(?=\s*[-*•\d])")


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence in `text`, white space trimmed."""
    return split_spans(text, _SENTENCE_END, keep_separator=True)


def split_spans(text: str, separator: re.Pattern[str], *, keep_separator: bool) -> list[tuple[int, int]]:
    """(start, end) of each piece of `text` between matches of `separator` (each piece ending
    after its separator with `keep_separator`, before it without), white space trimmed, empty
    pieces left out."""
    spans = []
    cut = 0
    for m in [*separator.finditer(text), None]:
        end = (m.end() if keep_separator else m.start()) if m else len(text)
        a, b = cut, end
        while a < b and text[a].isspace():
            a += 1
        while b > a and text[b - 1].isspace():
            b -= 1
        if b > a:
            spans.append((a, b))
        cut = m.end() if m else len(text)
    return spans


class Span(Protocol):
    """What the chunker needs of a loaded element (see `ingest.loaders.Element`); read-only, so
    frozen dataclasses satisfy it."""

    @property
    def start(self) -> int: ...
    @property
    def end(self) -> int: ...
    @property
    def page(self) -> int | None: ...
    @property
    def section(self) -> str | None: ...
    @property
    def kind(self) -> str: ...


@dataclass(frozen=True)
class _Unit:
    start: int
    end: int
    tokens: int
    page: int | None
    section: str | None
    heading: bool


class Chunker:
    """Packs a document's elements into chunks of at most `size` tokens, `overlap` shared."""

    def __init__(self, size: int = DEFAULT_CHUNK_SIZE, overlap: int = DEFAULT_CHUNK_OVERLAP,
                 *, embedder_limit: int | None = None,
                 embedder_count: Callable[[Sequence[str]], list[int]] | None = None):
        if size < 16:
            raise ValueError("chunk size must be at least 16 tokens")
        if not 0 <= overlap < size:
            raise ValueError("chunk overlap must be at least 0 and smaller than the chunk size")
        self.size = size
        self.overlap = overlap
        self.embedder_limit = embedder_limit
        self.embedder_count = embedder_count
        self._enc = get_encoding(DEFAULT_ENCODING)

    def _count(self, text: str) -> int:
        return len(self._enc.encode(text, disallowed_special=()))

    def chunk(self, text: str, elements: Sequence[Span]) -> list[ChunkDraft]:
        units = [u for e in elements for u in self._units(text, e, self.size)]
        chunks = self._pack(text, units, self.size)
        if self.embedder_limit and self.embedder_count and chunks:
            chunks = self._fit_embedder(text, chunks, units)
        return chunks

    # -- units: elements, or sentences of long elements, or token windows of long sentences ---

    def _units(self, text: str, element: Span, budget: int) -> list[_Unit]:
        start, end = element.start, element.end
        # Trim white space so that chunk offsets cover text, not padding.
        while start < end and text[start].isspace():
            start += 1
        while end > start and text[end - 1].isspace():
            end -= 1
        if start == end:
            return []
        heading = element.kind in ("Title", "Header")
        piece = text[start:end]
        tokens = self._count(piece)
        if tokens <= budget:
            return [_Unit(start, end, tokens, element.page, element.section, heading)]
        return [u for a, b in sentence_spans(piece)
                for u in self._sentence(text, start + a, start + b, element, budget)]

    def _sentence(self, text: str, start: int, end: int, element: Span, budget: int) -> list[_Unit]:
        piece = text[start:end]
        ids = self._enc.encode(piece, disallowed_special=())
        if len(ids) <= budget:
            return [_Unit(start, end, len(ids), element.page, element.section, False)]
        # A sentence longer than a chunk: cut it at token boundaries, mapped back to characters.
        _, offsets = self._enc.decode_with_offsets(ids)
        out = []
        for i in range(0, len(ids), budget):
            a = start + offsets[i]
            b = start + offsets[i + budget] if i + budget < len(ids) else end
            while a < b and text[a].isspace():
                a += 1
            if b > a:
                out.append(_Unit(a, b, min(budget, len(ids) - i), element.page, element.section, False))
        return out

    # -- packing ---------------------------------------------------------------------------------

    def _pack(self, text: str, units: list[_Unit], size: int) -> list[ChunkDraft]:
        chunks: list[ChunkDraft] = []
        current: list[_Unit] = []
        total = 0
        for unit in units:
            # A new page starts a new chunk, so a citation's page number is the page of all its text.
            if current and unit.page != current[-1].page:
                while current:
                    current = self._emit(text, current, size, chunks)
                total = 0
            # A heading starts a new chunk once the current one is half full: sections stay whole.
            if current and (total + unit.tokens > size or (unit.heading and total >= size // 2)):
                current = self._emit_with_overlap(text, current, unit.tokens, size, chunks)
                total = sum(u.tokens for u in current)
                # Units the chunk gave back, with the overlap before them, may still leave no room.
                while current and total + unit.tokens > size:
                    current = self._emit_with_overlap(text, current, unit.tokens, size, chunks)
                    total = sum(u.tokens for u in current)
            current.append(unit)
            total += unit.tokens
        while current:
            current = self._emit(text, current, size, chunks)
        # Drop chunks that overlap made redundant (entirely inside the previous one).
        deduped: list[ChunkDraft] = []
        for c in chunks:
            if deduped and c.start_char >= deduped[-1].start_char and c.end_char <= deduped[-1].end_char:
                continue
            deduped.append(c)
        return deduped

    def _emit(self, text: str, current: list[_Unit], size: int, chunks: list[ChunkDraft]) -> list[_Unit]:
        """Append a chunk of `current`'s leading units; the units it could not hold are returned,
        to start the next chunk (they must not be dropped: their text would be in no chunk)."""
        draft, used = self._draft(text, current, size)
        chunks.append(draft)
        return current[used:]

    def _emit_with_overlap(self, text: str, current: list[_Unit], incoming: int, size: int,
                           chunks: list[ChunkDraft]) -> list[_Unit]:
        """`_emit`, and the next chunk's start: the overlap carried from the chunk just made, then
        the units it gave back."""
        rest = self._emit(text, current, size, chunks)
        held = current[:len(current) - len(rest)]
        return self._overlap_tail(held, incoming + sum(u.tokens for u in rest), size) + rest

    def _overlap_tail(self, current: list[_Unit], incoming: int, size: int) -> list[_Unit]:
        tail: list[_Unit] = []
        total = 0
        for unit in reversed(current[1:]):  # never carry the whole chunk over
            if total + unit.tokens > self.overlap or total + unit.tokens + incoming > size:
                break
            tail.insert(0, unit)
            total += unit.tokens
        return tail

    def _draft(self, text: str, units: list[_Unit], size: int) -> tuple[ChunkDraft, int]:
        """The chunk of `units` (or of as many leading ones as fit) and how many it holds."""
        start, end = units[0].start, units[-1].end
        piece = text[start:end]
        tokens = self._count(piece)
        # The text between units (blank lines) can tokenize to more than the units' sum; give back
        # the last unit, which the caller carries into the next chunk.
        if tokens > size and len(units) > 1:
            return self._draft(text, units[:-1], size)
        return ChunkDraft(text=piece, token_count=tokens, start_char=start, end_char=end,
                          page=units[0].page, section=units[0].section), len(units)

    # -- the embedder's own limit --------------------------------------------------------------

    def _fit_embedder(self, text: str, chunks: list[ChunkDraft], units: list[_Unit]) -> list[ChunkDraft]:
        limit, count = self.embedder_limit, self.embedder_count
        if limit is None or count is None:
            return chunks
        counts = count([c.text for c in chunks])
        out: list[ChunkDraft] = []
        for chunk, n in zip(chunks, counts, strict=True):
            if n <= limit:
                out.append(chunk)
                continue
            # Re-chunk this span with a budget shrunk by how much the embedder over-counts.
            budget = max(8, int(chunk.token_count * limit / n * 0.9))
            for _ in range(8):
                inner = [
                    u2 for u in units if u.start >= chunk.start_char and u.end <= chunk.end_char
                    for u2 in self._units(text, _AsSpan(u), budget)
                ]
                pieces = self._pack(text, inner, budget)
                sizes = count([p.text for p in pieces])
                if max(sizes) <= limit:
                    break
                budget = max(4, int(budget * 0.8))
            out.extend(pieces)
        return out


@dataclass(frozen=True)
class _AsSpan:
    """A unit seen as an element again, to re-split it with a smaller budget."""

    unit: _Unit

    @property
    def start(self) -> int:
        return self.unit.start

    @property
    def end(self) -> int:
        return self.unit.end

    @property
    def page(self) -> int | None:
        return self.unit.page

    @property
    def section(self) -> str | None:
        return self.unit.section

    @property
    def kind(self) -> str:
        return "Title" if self.unit.heading else "NarrativeText"

    @property
    def text(self) -> str:
        return ""
