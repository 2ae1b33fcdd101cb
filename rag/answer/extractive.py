"""The offline answerer: quotes the units of the passages that best answer the question.

Each passage is read as its document laid it out (`rag.answer.passages`: sentences under their
heading, list items after their lead-in, table rows under their header). A unit's score adds up
what was measured to pick the answer on the tuning half of the project's answer set
(`rag eval --answers`):

- its meaning: the cosine of the question and the unit read under its heading (the collection's
  embedder), which bridges words that differ ("how big is the battery" and "100 kWh"), mixed with
  the cosine of its own words alone (a heading can drown what one sentence says);
- its words: the share of the question's content words it holds, compared by stem
  (`rag.answer.words`: "quorum" meets "quorate"), counting the words of its heading and lead-in;
- the time: a unit that names the year or month asked about (in its words, its heading or its
  document's title, "Annual Report 2024") gains a little, one naming only other years or months
  loses a little;
- the kind of answer asked for: a figure for "how many" and "how much" (a count of the thing
  asked about, a sum said to be a cost, a figure in the unit of measure asked for, "216 kWp", or
  the rate asked for, "918 kWh for each kWp", more), a date for "when", a frequency for "how
  often", a place for "where", a yes or no, or what may or may not be done, for "can they ...?",
  a superlative pointing the way asked ("the least" is not answered by "the best");
- for a follow-up fragment ("and the maximum?"), its own words: the embedder hardly tells them
  from the words they replace.

Never quoted: headings, a record's title, questions (an FAQ's own question echoes the user's), and
lead-ins ending in a colon (read as the context of what follows instead). A unit met twice in
overlapping passages is quoted once. Without a k it reads 8 passages (`DEFAULT_K`), since it quotes
only what answers.
"""

from __future__ import annotations

import functools
import hashlib
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rag.answer.answerer import AnswerRequest, Rewrite
from rag.answer.citations import citations_for
from rag.answer.conversation import Conversation
from rag.answer.passages import Unit, units_of
from rag.answer.rewrite import offline_standalone
from rag.answer.types import AnswerCitations, AnswerDelta, AnswerDone, AnswerEvent, Usage
from rag.answer.usage import context_usage, token_usage
from rag.answer.vector_memo import MemoEmbedder, VectorMemo
from rag.answer.words import acronyms, content_stems, stem, word_shares
from rag.embeddings import Embedder
from rag.records import Collection
from rag.retrieval import Hit
from rag.tokens import count_tokens

EXTRACTIVE = "extractive"
"""The model name of this answerer: it needs no key and no network."""
NO_ANSWER = "I could not find an answer to that in the documents."

WORDS_WEIGHT = 0.45
"""Weight of the share of the question's words a unit holds, beside its cosine (in [-1, 1])."""
OWN_WEIGHT = 0.6
"""Weight of the cosine of the question and the unit's own words, averaged with the cosine of the
unit read under its heading or lead-in: a heading that says what the section is about can also
drown what one sentence of it says ("served first" under "Can I join if I do not live in ...?")."""
DEFAULT_K = 8
"""Passages this answerer reads when the caller gives no k (a chat model: 5). It quotes only the
units that answer, so reading deeper costs the reader nothing, and finds answers that retrieval
ranked sixth to eighth."""
MARGIN = 0.08
"""Units scoring within this of the best are quoted too, up to MAX_UNITS."""
MAX_UNITS = 3
MIN_SCORE = 0.3
"""A best unit below this means the passages do not answer the question."""
KIND_BONUS = 0.1
"""Added to a unit holding the kind of answer asked for (a figure, a date, a frequency)."""
SUPERLATIVE_BONUS = 0.2
"""Added to a unit stating a superlative ("the best month") for a question asking for one: a list of
figures holds the answer only for a reader who compares them."""
OTHER_TIME_PENALTY = 0.1
"""Taken from a unit that names years, none of them the year the question asks about; and again
for months."""
SAME_TIME_BONUS = 0.1
"""Added to a unit that names the year the question asks about, in its words, its heading or its
document's title; and again for the month."""
FOCUS_BONUS = 0.1
"""Added to a unit holding the word the question asks for ("what quorum" → "quorate")."""
COUNTED_BONUS = 0.3
"""Added instead for "how many panels" met by a count of panels ("540 panels")."""
FRAGMENT_WEIGHT = 0.3
"""Weight of the share of a follow-up fragment's own words a unit holds ("and the maximum?" asks for
a maximum, which the embedder hardly tells from the minimum asked about before)."""
HEADING_WEIGHT = 0.2
"""Weight of the cosine of the question and the heading of the unit's section (an FAQ record's
question): the document's own words for what the unit is about."""

_FIGURE = re.compile(r"\d")
_YEAR = re.compile(r"\b(?:19|20)\d\d\b")
_MONTH_NAMES = r"january|february|march|april|june|july|august|september|october|november|december"
_MAY = (r"(?:(?<=\bin )|(?<=\bof )|(?<=\bby )|(?<=\bfrom )|(?<=\buntil )|(?<=\bsince )|(?<=\bduring )|"
        r"(?<=\bearly )|(?<=\blate )|(?<=\d )|(?<=\d\w\w ))may\b|\bmay(?=\s+\d)")
""""May" the month, not the verb: after "in", "by", "until" ... or a day ("12 May"), or before a
year or a day ("May 2025", "May 3")."""
_MONTH = re.compile(rf"\b(?:{_MONTH_NAMES})\b|{_MAY}", re.I)
_YEAR_OR_DATE = re.compile(rf"\b(1[89]\d\d|20\d\d)\b|\b({_MONTH_NAMES})\b|{_MAY}", re.I)
_DATES = re.compile(rf"\b(\d{{1,2}}\s+)?(?:{_MONTH_NAMES}|may)(\s+\d{{4}})?\b|\b(1[89]|20)\d\d\b", re.I)
"""Dates and years: figures that do not answer "how many" or "how much"."""
_NUMBER_WORDS = re.compile(r"\b(one|two|three|four|five|six|seven|eight|nine|ten|twelve|twenty|thirty|hundred|"
                           r"half|third|quarter|twice|once)\b", re.I)
_FREQUENCY = re.compile(r"\b(every|each|twice|once|annually|monthly|weekly|daily|yearly|a year|a month|a week)\b",
                        re.I)
_UNITS_OF_MEASURE = r"kwp|kwh|mwh|gwh|kw|mw|kva|watts?|volts?|amps?|tonnes?|kg|km|mm|cm"
_MEASURE = re.compile(rf"\b(?:{_UNITS_OF_MEASURE})\b", re.I)
_MEASURED = re.compile(rf"(?<![\d,.])\d[\d,.]*+\s*({_UNITS_OF_MEASURE})\b", re.I)
"""A figure in a unit of measure ("216 kWp"), the unit in group 1."""
_RATE_ASKED = re.compile(r"\b(\w+) per (\w+)\b", re.I)
_DURATION = re.compile(r"\b(years?|months?|weeks?|days?|hours?|minutes?)\b", re.I)
_SUPERLATIVE = re.compile(r"\b(most|least|best|worst|highest|lowest|largest|smallest|biggest|greatest|fewest|"
                          r"weakest|strongest|poorest|quietest|busiest)\b",
                          re.I)
_LOW_SUPERLATIVE = re.compile(r"\b(least|worst|lowest|smallest|fewest|weakest|poorest|quietest)\b", re.I)
_PERMISSION_ASKED = re.compile(r"(can|could|may|might)\b(?!.*\b(?:how|what|when|where|which|who)\b)", re.I)
_PERMISSION = re.compile(r"\b(can|cannot|can't|may|must|allowed|permitted|only|never)\b", re.I)
_NON_PLACE_NAMES = (r"(?!(?:January|February|March|April|May|June|July|August|September|October|November|December|"
                    r"Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)\b)")
_PLACE = re.compile(rf"\b(?i:in|at|on|from|to|inside|outside|near|behind|beside)\s+(?i:the\s+|a\s+)?"
                    rf"(?:{_NON_PLACE_NAMES}[A-Z][a-z][\w'’-]*|[\w'’]+\s+(?i:book|room|hall|office|site|website|"
                    rf"page|area|folder|box|board|building|roof|shed|cupboard|register|portal|app|account))\b")
"""Where something is: a named place ("in Wrenfield Village Hall") or a place to look ("in the site
log book", "on the members' website")."""
_POLAR = re.compile(r"(do|does|did|is|are|was|were|can|could|will|would|should|has|have|may|must)\b")
_YES_NO = re.compile(r"(yes|no)\b", re.I)
_FOCUS = re.compile(r"\s*(?:(?:and|but|so)\s+)?(?:what|which)\s+"
                    r"(?:kind of\s+|type of\s+)?([a-z][\w-]*)\b", re.I)
_COST = re.compile(r"\b(cost|costs|price|pay|paid|charged|spend|spent|earn|raise|raised)\b")
_QUESTION_WORD = re.compile(r"\s*(what|who|whom|whose|when|where|which|why|how|is|are|was|"
                            r"were|do|does|did|can|could|will|would|should|has|have)\b", re.I)
"""A question word opening a question (read past fillers and a preposition: `asked_form`)."""
_AMOUNT_ASKED = re.compile(r"(how|and how) (many|much|big|large|small|high|heavy|far|old)\b|"
                           r"what (percentage|size|proportion|share|price|rate)\b")
_MONEY = re.compile(r"[£$€]\s?\d|\b(?:GBP|USD|EUR)\s?\d|\d\s?(?:p|pence)\b", re.I)
_RATE = re.compile(r"\bper\b|%|\ba (year|month|kwh)\b", re.I)
_SPLIT_QUESTION = re.compile(r",?\s+and\s+(?=(?:what|how|who|when|where|which|why|is|are|do|does|can)\b)", re.I)


@dataclass(frozen=True)
class _Candidate:
    n: int
    """The passage it comes from (1-based rank)."""
    unit: Unit
    document_start: int
    """Where the unit starts in its document's text."""
    title: str = ""
    """Its document's title ("Annual Report 2024" says the year of every figure in it)."""



class ExtractiveAnswerer:
    """Answers with the best units of the passages, quoted as they stand and each cited.

    `embedder_for` gives the embedder of a collection (its own, so units and question are compared
    in the space the collection was built in); it is asked only when there is something to compare.
    `memo` keeps the vectors of units already read, for the next answers (by default, its own).
    """

    def __init__(self, embedder_for: Callable[[Collection], Embedder], memo: VectorMemo | None = None):
        self.embedder_for = embedder_for
        self.memo = memo if memo is not None else VectorMemo()

    default_k = DEFAULT_K
    """Passages the asker retrieves for this answerer when the caller gives no k."""

    @property
    def prompt_version(self) -> str:
        """Part of the answer cache's key: a hash of this answerer's code, so an answerer that
        would answer otherwise never replays an older one's answers."""
        return _code_version()

    def standalone(self, conversation: Conversation, collection: Collection, model: str,
                   model_requested: bool = False) -> Rewrite:
        """The follow-up made to stand alone by rules (`rag.answer.rewrite`); no tokens spent."""
        embedder = self.embedder_for(collection)
        return Rewrite(offline_standalone(conversation, lambda texts: embedder.embed(texts, truncate=True)))

    def stream(self, request: AnswerRequest) -> Iterator[AnswerEvent]:
        """Quote the units that best answer the question, each cited; see the module docstring."""
        question, hits = request.retrieval_question, request.hits
        candidates = _candidates(hits)
        chosen: list[_Candidate] = []
        if candidates:
            embedder = MemoEmbedder(self.embedder_for(request.collection), self.memo)
            # The kind of answer wanted is in the user's own words, unless they gave only a fragment
            # ("and the barn?") that the standalone question completed.
            own_question = bool(_QUESTION_WORD.match(asked_form(request.question)))
            asked_as = request.question if own_question else question
            # A fragment that follows up ("and the maximum?") names, in its own words, what differs
            # from the question before: the answer must hold them.
            fragment = content_stems(request.question) if request.history and not own_question else set()
            chosen = _choose(question, asked_as, candidates, embedder, [h.text for h in hits], fragment)
        if not chosen:
            yield AnswerDelta(NO_ANSWER)
            yield AnswerCitations([])
            yield AnswerDone(EXTRACTIVE, _usage(request, NO_ANSWER))
            return
        # Cited 1..n in the order the passages first appear in the answer; each passage's quote is
        # the one span of its document that holds everything said from it.
        number = {n: i for i, n in enumerate(dict.fromkeys(c.n for c in chosen), start=1)}
        spans: dict[int, tuple[int, int]] = {}
        for c in chosen:
            h = hits[c.n - 1]
            a = h.start_char + (c.unit.context_start if c.unit.context_start is not None else c.unit.start)
            b = h.start_char + c.unit.end
            lo, hi = spans.get(c.n, (a, b))
            spans[c.n] = (min(lo, a), max(hi, b))
        quotes = {n: (a, b, hits[n - 1].text[a - hits[n - 1].start_char:b - hits[n - 1].start_char])
                  for n, (a, b) in spans.items()}
        parts = [f"{_as_sentence(said)} [{number[n]}]" for said, n in _render(chosen)]
        text = " ".join(parts)
        for i, part in enumerate(parts):
            yield AnswerDelta(part if i == 0 else " " + part)
        yield AnswerCitations(citations_for(hits, [c.n for c in chosen], quotes))
        yield AnswerDone(EXTRACTIVE, _usage(request, text))


def _render(chosen: Sequence[_Candidate]) -> list[tuple[str, int]]:
    """What the answer says, unit by unit, with the passage each is cited from. Items of one list
    are said together, after their lead-in once, in the document's order (steps stay in sequence)."""
    out: list[tuple[str, int]] = []
    lists: dict[tuple[int, int], list[_Candidate]] = {}
    for c in chosen:
        if c.unit.kind == "item" and c.unit.context_start is not None:
            key = (c.n, c.unit.context_start)
            if key not in lists:
                lists[key] = []
                out.append(("", -len(lists)))  # a place held for the list, filled below
            lists[key].append(c)
        else:
            out.append((c.unit.text, c.n))
    for place, ((n, _), items) in enumerate(lists.items(), start=1):
        items.sort(key=lambda c: c.document_start)
        said = " ".join([items[0].unit.context, *(_as_sentence(c.unit.own) for c in items)])
        out[out.index(("", -place))] = (said, n)
    return out


@functools.cache
def _code_version() -> str:
    from rag.answer import passages, rewrite, words

    digest = hashlib.sha256()
    for module in (sys.modules[__name__], passages, rewrite, words):
        digest.update(Path(module.__file__ or "").read_bytes())
    return digest.hexdigest()[:16]


def _as_sentence(text: str) -> str:
    """A row or an item read as a sentence: with a full stop, so the next one starts anew."""
    return text if text.endswith((".", "!", "?")) else text + "."


def _candidates(hits: Sequence[Hit]) -> list[_Candidate]:
    """The quotable units of the passages, each once (passages overlap), best passage first."""
    seen_spans: set[tuple[int, int]] = set()
    seen_texts: set[str] = set()
    out = []
    for n, h in enumerate(hits, start=1):
        title = " ".join((h.title or "").split()).casefold()
        for unit in units_of(h.text, h.section or h.title):
            if not unit.quotable:
                continue
            where = (h.document_id, h.start_char + unit.start)
            folded = unit.text.casefold()
            if where in seen_spans or folded in seen_texts or folded == title:
                continue
            seen_spans.add(where)
            seen_texts.add(folded)
            out.append(_Candidate(n, unit, h.start_char + unit.start, h.title or ""))
    return out


class Scorer:
    """Scores the candidate units of one answer against questions: the features apart (so they
    can be inspected and measured) and their weighted sum."""

    def __init__(self, candidates: Sequence[_Candidate], embedder: Embedder | MemoEmbedder,
                 passages: Sequence[str]):
        self.candidates = candidates
        self.embedder = embedder
        self.read = [f"{c.unit.context}: {c.unit.own}" if c.unit.context else c.unit.own for c in candidates]
        self.vectors = embedder.embed(self.read, truncate=True)
        # A unit with nothing to be read under is one text, embedded once.
        self.own_vectors = embedder.embed([c.unit.own for c in candidates], truncate=True)
        headings = sorted({c.unit.heading for c in candidates} - {""})
        by_heading = dict(zip(headings, embedder.embed(headings, truncate=True), strict=True)) if headings else {}
        none = np.zeros(embedder.dim, np.float32)
        self.heading_vectors = np.stack([by_heading.get(c.unit.heading, none) for c in candidates])
        self.stems = [content_stems(text) for text in self.read]
        self.expansions = acronyms(passages)

    def features(self, question: str, asked_as: str, fragment: AbstractSet[str] = frozenset()) -> dict[str, np.ndarray]:
        """Per candidate: `cosine` (question and unit, under its heading and alone), `heading`
        (question and heading), `words` (share of the question's words held), `kind` (the answer
        kind bonus), `focus` (holds the word asked for), `fragment` (share of a follow-up fragment's
        words held), `same_time` and `other_time` (names the year or month asked about, or others)."""
        q = self.embedder.embed_one(question)
        asked = content_stems(question)
        years = set(_YEAR.findall(question))
        other_time = np.array([bool(years) and bool(named := set(_YEAR.findall(text))) and not years & named
                               for text in self.read], dtype=float)
        focus = _focus(question)
        held = np.array([bool(focus) and focus <= stems for stems in self.stems], dtype=float)
        same_time = np.array([bool(years & set(_YEAR.findall(f"{c.title} {c.unit.heading} {text}")))
                              for c, text in zip(self.candidates, self.read, strict=True)], dtype=float)
        # A month asked about ("in March 2024") picks the row or sentence of that month the same way.
        months = _months(question)
        other_time += np.array([bool(months) and bool(said := _months(text)) and not months & said
                                for text in self.read], dtype=float)
        same_time += np.array([bool(months & _months(f"{c.unit.heading} {text}"))
                               for c, text in zip(self.candidates, self.read, strict=True)], dtype=float)
        cosine = (self.vectors @ q + OWN_WEIGHT * (self.own_vectors @ q)) / (1 + OWN_WEIGHT)
        return {"cosine": cosine, "heading": self.heading_vectors @ q, "other_time": other_time,
                "same_time": same_time,
                "focus": held,
                "fragment": np.array([len(fragment & stems) / len(fragment) if fragment else 0.0
                                      for stems in self.stems]),
                "words": word_shares(asked, self.stems, self.expansions),
                "kind": np.array([_answer_kind_bonus(asked_as, c.unit.own) for c in self.candidates])}

    def scores(self, question: str, asked_as: str, fragment: AbstractSet[str] = frozenset()) -> np.ndarray:
        f = self.features(question, asked_as, fragment)
        return (f["cosine"] + HEADING_WEIGHT * f["heading"] + WORDS_WEIGHT * f["words"] + f["kind"]
                + FOCUS_BONUS * f["focus"] - OTHER_TIME_PENALTY * f["other_time"]
                + SAME_TIME_BONUS * f["same_time"] + FRAGMENT_WEIGHT * f["fragment"])


def _choose(question: str, asked_as: str, candidates: list[_Candidate], embedder: Embedder | MemoEmbedder,
            passages: Sequence[str], fragment: AbstractSet[str] = frozenset()) -> list[_Candidate]:
    """The units to quote, best first. `question` stands alone (what is compared); `asked_as` is how
    the user put it (what says which kind of answer is wanted)."""
    parts = [p for p in _SPLIT_QUESTION.split(question) if p.strip()] or [question]
    scorer = Scorer(candidates, embedder, passages)
    chosen: list[int] = []
    for k, part in enumerate(parts):
        scores = scorer.scores(part, asked_as if len(parts) == 1 else part, fragment)
        order = np.argsort(-scores, kind="stable")
        best = float(scores[order[0]])
        if best < MIN_SCORE:
            continue
        # The best of each part of the question; for a one-part question, those nearly as good too.
        wanted = MAX_UNITS if k == 0 and len(parts) == 1 else 1
        for i in order[:wanted]:
            if scores[i] >= best - MARGIN and int(i) not in chosen:
                chosen.append(int(i))
    return [candidates[i] for i in chosen]


@functools.lru_cache(maxsize=8192)  # the same units are read for many questions
def _months(text: str) -> frozenset[str]:
    """The months `text` names."""
    return frozenset(m.group().lower() for m in _MONTH.finditer(text))


def _focus(question: str) -> set[str]:
    """The stem of what a question asks for: the word after "what" or "which" ("what
    quorum does the AGM need?" asks for a quorum)."""
    m = _FOCUS.match(question)
    return content_stems(m.group(1)) if m else set()


_FILLER = re.compile(r"\s*(?:(?:and|but|so|then|also|ok|okay|well|right)\b[\s,]*)+", re.I)
_PREPOSITION = re.compile(r"\s*(?:in|on|at|by|for|from|during|to|until)\s+(?=(?:what|which|whom)\b)", re.I)


@functools.lru_cache(maxsize=1024)  # asked once per candidate unit of the same question
def asked_form(question: str) -> str:
    """The question with what comes before its question word taken off: fillers ("so", "then") and a
    preposition ("in what month"), so its form says what kind of answer it wants."""
    q = question.strip()
    for pattern in (_FILLER, _PREPOSITION):
        m = pattern.match(q)
        q = q[m.end():] if m else q
    return q


def _answer_kind_bonus(question: str, text: str) -> float:
    """The kind bonus (`_kind_bonus`), or more for a figure in the unit of measure the question
    names ("school array kwp" → "216 kWp"), and more again for the rate it asks ("kWh per kWp" →
    "918 kWh for each kWp")."""
    kind = _kind_bonus(question, text)
    asked, rate = _measures_asked(question)
    if asked and any(m.group(1).lower() in asked for m in _MEASURED.finditer(text)):
        kind = max(kind, COUNTED_BONUS)
    if rate is not None and rate.search(text):
        kind += KIND_BONUS
    return kind


@functools.lru_cache(maxsize=1024)  # asked once per candidate unit of the same question
def _measures_asked(question: str) -> tuple[frozenset[str], re.Pattern[str] | None]:
    """The units of measure a question names, and the pattern of a figure at the rate it asks for
    ("kWh per kWp" → "918 kWh for each kWp"), if it asks one."""
    asked = frozenset(m.group().lower() for m in _MEASURE.finditer(question))
    rate = _RATE_ASKED.search(question)
    if rate is None:
        return asked, None
    return asked, re.compile(rf"(?<![\d,.])\d[\d,.]*+\s*{re.escape(rate.group(1))}\s+"
                             rf"(?:per|for each|for every|each|an?)\s+{re.escape(rate.group(2))}\b", re.I)


def _kind_bonus(question: str, text: str) -> float:
    """Classic answer typing: a question for a figure, a date or a frequency prefers units holding
    one, and "how many panels" prefers "540 panels" above all."""
    q = asked_form(question).lower()
    if _SUPERLATIVE.search(q) and re.match(r"(which|what|who|when|where)\b", q):
        # "Which month ... the most": the document's own superlative ("June was the best month"),
        # pointing the same way ("the least" is not answered by "the best").
        low = bool(_LOW_SUPERLATIVE.search(q))
        said = [m.group().lower() for m in _SUPERLATIVE.finditer(text)]
        superlative = SUPERLATIVE_BONUS if any(bool(_LOW_SUPERLATIVE.match(w)) == low for w in said) else 0.0
        return superlative + _kind_bonus(_SUPERLATIVE.sub("", q), text)
    if _POLAR.match(q):
        if _YES_NO.match(text):
            return KIND_BONUS
        # "Can they stand again?" is answered by what may or may not be done ("may stand again").
        if _PERMISSION_ASKED.match(q) and _PERMISSION.search(text):
            return KIND_BONUS
        return 0.0
    if q.startswith("where"):
        return KIND_BONUS if _PLACE.search(text) else 0.0
    if re.match(r"(at )?what (rate|tariff)\b", q):
        return KIND_BONUS if _RATE.search(text) and _FIGURE.search(text) else 0.0
    if _AMOUNT_ASKED.match(q) or _COST.search(q):
        m = re.match(r"\s*how many\s+(\w+?)(?:e?s)?\b", q)
        if m and re.search(rf"\d[\d,.]*\s+(?:\w+\s+)?{re.escape(m.group(1))}", text, re.I):
            return COUNTED_BONUS
        # "What did it cost ...?" met by a sum of money said to be a cost ("costs were GBP 7,550").
        cost = _COST.search(q)
        if cost and _MONEY.search(text) and stem(cost.group()) in content_stems(text):
            return COUNTED_BONUS
        return KIND_BONUS if _FIGURE.search(_DATES.sub("", text)) else 0.0
    if re.match(r"how often\b|how frequently\b", q):
        return KIND_BONUS if _FREQUENCY.search(text) else 0.0
    if re.match(r"how long\b|for how long\b", q):
        return KIND_BONUS if _DURATION.search(text) and (_FIGURE.search(text) or _NUMBER_WORDS.search(text)) else 0.0
    if re.match(r"when\b|what (date|year|month|day)\b|which (date|year|month|day)\b|on which day\b", q):
        return KIND_BONUS if _YEAR_OR_DATE.search(text) else 0.0
    return 0.0


def _usage(request: AnswerRequest, answer: str) -> Usage:
    """Token counts in cl100k_base, so extractive answers report usage in the same units: what it
    read (the question, the passages) and what it wrote."""
    prompt = count_tokens(request.retrieval_question) + sum(count_tokens(h.text) for h in request.hits)
    return {**token_usage(prompt, count_tokens(answer)),
            "context": context_usage(passages_sent=len(request.hits), turns_sent=len(request.history))}


__all__ = ["EXTRACTIVE", "NO_ANSWER", "ExtractiveAnswerer"]
