"""Answer quality on a set of questions with known facts: is the fact said early, and cited?

A set is a JSON file (`corpora/wrenfield-solar-answers.json` is the project's): the corpus it is
about, and items, each with the user turns to ask (the last one is scored; earlier ones are asked
first and answered by the system under test, as a conversation), the acceptable facts, the source
files a citation must point at, and the half it belongs to (`tune`: what the answerer may be tuned
on; `held-out`: never looked at while tuning).

An answer is correct when both hold:

- one acceptable fact appears in its lead: its first two sentences or its first 60 words, whichever
  holds more. A fact is a string, or a list of strings that must all appear; text is compared with
  case and white space folded, and with the `[n]` citation markers taken out (they are not words).
- one of its citations points at one of the item's sources: a source is a file of the corpus
  (`governance.md`), or one record of a JSON Lines file (`faq.jsonl#faq-join`), matched against the
  end of the citation's source path.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rag.answer.types import Answer
from rag.chunking import sentence_spans
from rag.errors import InvalidInput

__all__ = ["HALVES", "AnswerItem", "AnswerReport", "AnswerSet", "Graded", "grade", "lead", "load_answer_set",
           "run_answer_set"]

HALVES = ("tune", "held-out")
LEAD_SENTENCES = 2
LEAD_WORDS = 60
_MARKER = re.compile(r"\s*\[\d+(?:\s*[,;]\s*\d+)*\]")

Message = dict[str, str]


@dataclass(frozen=True)
class AnswerItem:
    id: str
    half: str
    turns: tuple[str, ...]
    """The user's turns in order; the answer to the last one is scored."""
    facts: tuple[tuple[str, ...], ...]
    """Acceptable facts: any one will do, and every string of that one must appear."""
    sources: tuple[str, ...]
    origin: str = ""
    """Where the question comes from: `paraphrase`, `follow-up`, or the file it is quoted from."""

    @property
    def question(self) -> str:
        return self.turns[-1]


@dataclass(frozen=True)
class AnswerSet:
    items: list[AnswerItem]
    corpus: Path | None = None
    """The folder of documents the set is about (relative paths resolved against the set's file)."""


def load_answer_set(path: Path) -> AnswerSet:
    """Read and check a set; a malformed item is an `InvalidInput` naming it."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise InvalidInput(f"{path}: not a readable JSON answer set ({e})", param="answers") from None
    if not isinstance(data, dict) or not isinstance(data.get("items"), list):
        raise InvalidInput(f"{path}: expected an object with a list of items", param="answers")
    items: list[AnswerItem] = []
    seen: set[str] = set()
    for n, raw in enumerate(data["items"], start=1):
        items.append(_item(raw, f"{path}: item {n}"))
        if items[-1].id in seen:
            raise InvalidInput(f"{path}: item id {items[-1].id!r} is used twice", param="answers")
        seen.add(items[-1].id)
    corpus = data.get("corpus")
    return AnswerSet(items, (Path(path).parent / corpus) if isinstance(corpus, str) else None)


def _item(raw: Any, where: str) -> AnswerItem:
    if not isinstance(raw, dict):
        raise InvalidInput(f"{where} is not an object", param="answers")
    turns = raw.get("turns", [raw["question"]] if "question" in raw else None)
    facts = raw.get("facts")
    sources = raw.get("sources")
    checks = {
        "id": isinstance(raw.get("id"), str) and raw["id"],
        "half": raw.get("half") in HALVES,
        "question or turns": isinstance(turns, list) and turns and all(isinstance(t, str) and t.strip()
                                                                       for t in turns),
        "facts": isinstance(facts, list) and facts and all(
            isinstance(f, str) or (isinstance(f, list) and f and all(isinstance(s, str) for s in f)) for f in facts),
        "sources": isinstance(sources, list) and sources and all(isinstance(s, str) and s for s in sources),
    }
    bad = [name for name, ok in checks.items() if not ok]
    if bad:
        raise InvalidInput(f"{where}: missing or malformed {', '.join(bad)} (half is one of {', '.join(HALVES)})",
                           param="answers")
    assert isinstance(turns, list) and isinstance(facts, list) and isinstance(sources, list)
    return AnswerItem(id=raw["id"], half=raw["half"], turns=tuple(turns),
                      facts=tuple((f,) if isinstance(f, str) else tuple(f) for f in facts),
                      sources=tuple(sources), origin=str(raw.get("origin", "")))


# -- grading ----------------------------------------------------------------------------------------

def _fold(text: str) -> str:
    return " ".join(text.casefold().split())


def lead(answer: str) -> list[str]:
    """The parts of an answer a fact must be in: its first two sentences, and its first 60 words
    (markers taken out of both)."""
    text = " ".join(_MARKER.sub("", answer).split())
    spans = sentence_spans(text)
    sentences = text[: spans[LEAD_SENTENCES - 1][1]] if len(spans) >= LEAD_SENTENCES else text
    words = " ".join(text.split()[:LEAD_WORDS])
    return [sentences, words]


def source_matches(cited: str, wanted: str) -> bool:
    """Whether a citation's source is the wanted file (or record), by the end of its path."""
    if "#" not in wanted:
        cited = cited.split("#", 1)[0]
    return cited == wanted or cited.endswith("/" + wanted)


@dataclass(frozen=True)
class Graded:
    item: AnswerItem
    answer: str
    cited: tuple[str, ...]
    """The sources of the answer's citations."""
    fact_found: bool
    source_cited: bool
    asked: tuple[Message, ...] = ()
    """The messages sent for the scored turn (earlier answers included)."""

    @property
    def correct(self) -> bool:
        return self.fact_found and self.source_cited

    @property
    def why(self) -> str:
        """What is wrong, in words ("" when correct)."""
        problems = []
        if not self.fact_found:
            problems.append("no acceptable fact in the first 2 sentences or 60 words")
        if not self.source_cited:
            problems.append(f"no citation of {' or '.join(self.item.sources)}")
        return "; ".join(problems)


def grade(item: AnswerItem, answer: Answer, asked: Sequence[Message] = ()) -> Graded:
    parts = [_fold(p) for p in lead(answer.answer)]
    found = any(all(_fold(s) in part for s in fact) for fact in item.facts for part in parts)
    cited = tuple(c.source for c in answer.citations)
    source_cited = any(source_matches(c, s) for c in cited for s in item.sources)
    return Graded(item, answer.answer, cited, found, source_cited, tuple(asked))


@dataclass
class AnswerReport:
    graded: list[Graded] = field(default_factory=list)

    def accuracy(self, half: str | None = None) -> tuple[int, int]:
        """(correct, asked) over one half, or all items."""
        chosen = [g for g in self.graded if half is None or g.item.half == half]
        return sum(g.correct for g in chosen), len(chosen)

    @property
    def failures(self) -> list[Graded]:
        return [g for g in self.graded if not g.correct]

    def to_dict(self) -> dict[str, Any]:
        halves = {}
        for half in HALVES:
            right, asked = self.accuracy(half)
            if asked:
                halves[half] = {"correct": right, "asked": asked, "accuracy": right / asked}
        return {"halves": halves,
                "failures": [{"id": g.item.id, "half": g.item.half, "question": g.item.question, "why": g.why,
                              "answer": g.answer, "cited": list(g.cited)} for g in self.failures]}


def run_answer_set(items: Iterable[AnswerItem], ask: Callable[[list[Message]], Answer]) -> AnswerReport:
    """Ask every item as a conversation (each earlier turn answered by `ask` too) and grade the
    answer to its last turn."""
    report = AnswerReport()
    for item in items:
        messages: list[Message] = []
        answer: Answer | None = None
        for turn in item.turns:
            if answer is not None:
                messages.append({"role": "assistant", "content": answer.answer})
            messages.append({"role": "user", "content": turn})
            answer = ask(list(messages))
        assert answer is not None
        report.graded.append(grade(item, answer, messages))
    return report
