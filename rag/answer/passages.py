"""A passage read the way its document was laid out: headings, sentences, list items, table rows.

The loaders keep a document's structure in its text: one element per paragraph (blank lines
between), a heading on a line of its own, a table as one line per row with cells between ` | ` and
the header first, a list item as its own paragraph under the sentence that leads into it
("At the end of 2024 the co-operative had:"). PDF text keeps the page's line breaks, so lines are
joined back into sentences unless a line is a heading. The extractive answerer quotes these units,
and reads each one under what gives it meaning: a table row with its header ("Role: Treasurer;
Name: Tom Hesketh"), a list item after its lead-in, a sentence under its heading.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from rag.answer.words import STOP_WORDS

__all__ = ["Unit", "units_of"]

_BLOCK_BREAK = re.compile(r"\n[ \t]*\n\s*")
# A sentence ends at . ! ? (and closing quotes or brackets) before white space and a capital, a
# digit, a quote or a currency sign: "289.8 kWp" and "e.g. this" do not end one. A colon at the end
# of a line ends a lead-in.
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"'”’)\]]*\s+(?=[A-Z0-9\"'“‘(£$€])|(?<=:)[ \t]*\n\s*")
_TERMINAL = (".", "!", "?", ":", ";", ",")
_PRONOUN_START = re.compile(r"(it|its|they|their|them|this|these|those|he|she|his|her)\b", re.I)
_BULLET = re.compile(r"^\s*(?:[-*•]|\d{1,2}[.)])\s+")
FIGURE_ITEM = 40
"""A sentence shorter than this with a figure, right after a lead-in, is an item of its list."""
SHORT = 20
"""A sentence shorter than this with no figure in it ("No.", "Yes.") is read with the next one."""


@dataclass(frozen=True)
class Unit:
    """One quotable piece of a passage."""

    start: int
    end: int
    """Span in the passage's text (the quote is text[start:end])."""
    kind: str
    """`sentence`, `item` (a list item), `row` (a table row), `heading`, `lead-in` (a sentence ending
    with a colon, which introduces what follows) or `question` (a sentence asking something)."""
    text: str
    """How an answer says it: white space folded; a row as `header: cell` pairs, an item after its
    lead-in."""
    context: str
    """What it is read under: its lead-in or heading (with the table header for a row)."""
    context_start: int | None = None
    """Where the quote must start to hold what `text` says (an item's lead-in, a row's header), when
    that is before `start`."""
    body: str = ""
    """The unit's own words, without the lead-in `text` repeats (empty: as `text`)."""
    heading: str = ""
    """The heading of the section it is in."""

    @property
    def own(self) -> str:
        return self.body or self.text

    @property
    def quotable(self) -> bool:
        return self.kind in ("sentence", "item", "row")


def _fold(text: str) -> str:
    return " ".join(text.split())


def _is_heading_line(line: str, alone: bool = False) -> bool:
    """A short line starting with a capital, with no sentence punctuation and not ending mid-phrase
    ("... 266,300 kWh of" is a wrapped line, not a heading). A line that is a paragraph of its own
    (`alone`) cannot be a wrapped one, so it may end with any word ("What a share is")."""
    stripped = line.strip()
    last = stripped.rsplit(None, 1)[-1].lower() if stripped else ""
    return (0 < len(stripped) < 80 and not stripped.endswith(_TERMINAL) and stripped[0].isupper()
            and ":" not in stripped and "|" not in stripped and (alone or last not in STOP_WORDS))


def _table_rows(block: str) -> list[list[str]] | None:
    lines = [ln for ln in block.split("\n") if ln.strip()]
    if len(lines) < 2:
        return None
    rows = [[cell.strip() for cell in ln.split(" | ")] for ln in lines]
    if len(rows[0]) < 2 or any(len(r) != len(rows[0]) for r in rows):
        return None
    return rows


def _blocks(text: str) -> list[tuple[int, int]]:
    spans, cut = [], 0
    for m in [*_BLOCK_BREAK.finditer(text), None]:
        end = m.start() if m else len(text)
        a, b = cut, end
        while a < b and text[a].isspace():
            a += 1
        while b > a and text[b - 1].isspace():
            b -= 1
        if b > a:
            spans.append((a, b))
        cut = m.end() if m else len(text)
    return spans


def _lines(text: str, a: int, b: int) -> list[tuple[int, int]]:
    out, pos = [], a
    for line in text[a:b].split("\n"):
        s, e = pos, pos + len(line)
        pos = e + 1
        while s < e and text[s].isspace():
            s += 1
        while e > s and text[e - 1].isspace():
            e -= 1
        if e > s:
            out.append((s, e))
    return out


def _sentences(text: str, a: int, b: int) -> list[tuple[int, int]]:
    spans, cut = [], a
    for m in [*_SENTENCE_END.finditer(text, a, b), None]:
        end = m.start() if m else b
        s, e = cut, end
        while s < e and text[s].isspace():
            s += 1
        while e > s and text[e - 1].isspace():
            e -= 1
        if e > s:
            spans.append((s, e))
        cut = m.end() if m else b
    # "No." alone says little: read it with the sentence it opens ("June 39,500." stays alone).
    merged: list[tuple[int, int]] = []
    for s, e in spans:
        previous = text[merged[-1][0]:merged[-1][1]] if merged else ""
        if previous and len(previous) < SHORT and not previous.endswith("?") and not any(c.isdigit() for c in previous):
            merged[-1] = (merged[-1][0], e)
        else:
            merged.append((s, e))
    return merged


def units_of(text: str, heading: str | None = None) -> list[Unit]:
    """The units of a passage's text, in order; `heading` is what the passage starts under (its
    chunk's section, or the document's title)."""
    units: list[Unit] = []
    current = heading or ""
    lead: tuple[str, int] | None = None  # the lead-in the following items belong to, and where it starts

    def add(kind: str, s: int, e: int, shown: str | None = None, context: str | None = None,
            context_start: int | None = None) -> None:
        own = _fold(text[s:e])
        units.append(Unit(s, e, kind, shown if shown is not None else own,
                          context if context is not None else current, context_start,
                          own if shown is not None else "", current))

    for a, b in _blocks(text):
        block = text[a:b]
        rows = _table_rows(block)
        if rows is not None:
            lines = _lines(text, a, b)
            header = rows[0]
            under = lead[0] if lead else current
            add("heading", *lines[0], context=under)
            for (s, e), cells in zip(lines[1:], rows[1:], strict=True):
                shown = "; ".join(f"{h}: {c}" if h else c for h, c in zip(header, cells, strict=True))
                add("row", s, e, shown, f"{under} ({' | '.join(header)})".strip(), lines[0][0])
            continue
        lines = _lines(text, a, b)
        # A paragraph's lines joined back into sentences; a heading line ends what came before.
        start = None
        after_heading = False
        for i, (s, e) in enumerate(lines):
            line = text[s:e]
            previous_ends = i == 0 or after_heading or text[lines[i - 1][1] - 1] in ".!?:"
            if (_is_heading_line(line, alone=len(lines) == 1 and lead is None) and previous_ends
                    and (i + 1 < len(lines) or len(lines) == 1)):
                if start is not None:
                    _paragraph(text, start, lines[i - 1][1], add, lead, current)
                    start = None
                current, lead, after_heading = _fold(line), None, True
                add("heading", s, e)
                continue
            after_heading = False
            if start is None:
                start = s
        if start is not None:
            lead = _paragraph(text, start, lines[-1][1], add, lead, current)
    return units


def _paragraph(text: str, a: int, b: int, add: Callable[..., None], lead: tuple[str, int] | None,
               heading: str) -> tuple[str, int] | None:
    """Add the units of one paragraph; returns the lead-in the paragraphs after it belong to."""
    body = text[a:b]
    looks_like_item = not body.rstrip().endswith((".", "!", "?")) or _BULLET.match(body) is not None
    if lead is not None and looks_like_item and "\n" not in body.strip():
        item = _fold(body)
        add("item", a, b, f"{lead[0]} {item}", lead[0], lead[1])
        return lead
    new_lead = None
    before = None
    for s, e in _sentences(text, a, b):
        sentence = _fold(text[s:e])
        if sentence.endswith(":"):
            add("lead-in", s, e)
            new_lead = (sentence, s)
            before = None
            continue
        figure = len(sentence) < FIGURE_ITEM and any(c.isdigit() for c in sentence)
        if new_lead is not None and before is None and figure:
            # "January 6,100. February 10,400." after "Monthly generation, in kWh:" is a list.
            add("item", s, e, f"{new_lead[0]} {sentence}", new_lead[0], new_lead[1])
            continue
        new_lead = None
        if sentence.endswith("?"):
            add("question", s, e)
        elif before is not None and _PRONOUN_START.match(sentence):
            # "It has 540 panels" means something only after the sentence naming "it".
            add("sentence", s, e, context=f"{heading}: {before}" if heading else before)
        else:
            add("sentence", s, e)
        before = sentence
    # A numbered step keeps the steps after it under the same lead-in.
    if new_lead is None and lead is not None and _BULLET.match(body):
        return lead
    return new_lead if before is None else None
