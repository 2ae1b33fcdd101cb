"""Citation markers checked against the passages, and the citations they point at.

The model reads passage n as `[n]` (n its retrieval rank) and cites it so. Numbers that match no
passage are removed, never passed on, and the same filter runs over streamed text: text from a `[`
is held back until its `]` is seen. What the reader gets is numbered 1..n in the order the passages
are first cited in the answer (`renumber`), so an answer never opens with `[3]`; each citation
keeps the rank it had in the prompt as `passage`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from rag.answer.types import Citation
from rag.retrieval import Hit

MARKER = re.compile(r"\[(\d+(?:\s*[,;]\s*\d+)*)\]")
"""[1], [1, 2], [1; 2]: numbers only; other bracketed text is left alone."""
_MAX_MARKER = 24  # a held-back "[..." longer than this is not a marker
_MARKER_START = re.compile(r"\[[\d,;\s]*")
_NUMBER_SEPARATOR = re.compile(r"\s*[,;]\s*")


class CitationFilter:
    """Removes citation markers that point at no passage, from whole or streamed text.

    Feed the text piece by piece and call `finish` at the end; `cited` collects the valid passage
    numbers in the order they were first cited. With `renumber`, each marker is written with the
    passage's place in `cited` (1 for the first passage cited, ...) instead of its number.
    """

    def __init__(self, passages: int, *, renumber: bool = False):
        self.passages = passages
        self.renumber = renumber
        self.cited: list[int] = []
        self._held = ""

    def _check(self, marker: str) -> str:
        m = MARKER.fullmatch(marker)
        if not m:
            return marker  # "[see above]" and the like are ordinary text
        numbers = [int(x) for x in _NUMBER_SEPARATOR.split(m.group(1))]
        valid = [x for x in numbers if 1 <= x <= self.passages]
        for x in valid:
            if x not in self.cited:
                self.cited.append(x)
        if self.renumber:
            valid = list(dict.fromkeys(self.cited.index(x) + 1 for x in valid))
        return "".join(f"[{x}]" for x in valid)

    def feed(self, text: str) -> str:
        """The text that can be passed on now: checked markers, less any held-back marker start."""
        buf, self._held = self._held + text, ""
        out: list[str] = []
        i = 0
        while i < len(buf):
            j = buf.find("[", i)
            if j < 0:
                out.append(buf[i:])
                break
            out.append(buf[i:j])
            k = buf.find("]", j)
            if k < 0:
                rest = buf[j:]
                if len(rest) <= _MAX_MARKER and _MARKER_START.fullmatch(rest):
                    self._held = rest  # maybe the start of a marker: wait for more text
                else:
                    out.append(rest)
                break
            marker = buf[j:k + 1]
            if MARKER.fullmatch(marker):
                out.append(self._check(marker))
                i = k + 1
            else:  # "[see [9]": keep the "[" as text and look again from the next character
                out.append("[")
                i = j + 1
        return "".join(out)

    def finish(self) -> str:
        """The text still held back at the end of the stream: it was never a marker."""
        rest, self._held = self._held, ""
        return rest


def tidy_removed_markers(text: str) -> str:
    """A whole answer without the gaps removed markers leave: no space before punctuation, no
    double spaces inside a line, none at the ends. Streamed text is already sent and stays."""
    text = re.sub(r"[ \t]+([.,;:!?])", r"\1", text)
    return re.sub(r"(?<=\S)[ \t]{2,}(?=\S)", " ", text).strip()


def citations_for(hits: Sequence[Hit], cited: Sequence[int],
                  quotes: Mapping[int, tuple[int, int, str]] | None = None) -> list[Citation]:
    """Citations for the passage numbers the answer used, in the order first cited: the first is
    index 1, and so on (the answer's markers must be numbered the same way).

    Each quotes its whole passage unless `quotes` gives (start_char, end_char, text) for it.
    """
    out = []
    for index, n in enumerate(dict.fromkeys(cited), start=1):
        h = hits[n - 1]
        start, end, quote = (quotes or {}).get(n, (h.start_char, h.end_char, h.text))
        out.append(Citation(index=index, document_id=h.document_id, chunk_id=h.chunk_id, source=h.source,
                            title=h.title, page=h.page, start_char=start, end_char=end, quote=quote,
                            score=h.score, passage=n))
    return out


__all__ = ["MARKER", "CitationFilter", "citations_for", "tidy_removed_markers"]
