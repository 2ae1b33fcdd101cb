"""The offline answerer: quotes the retrieved sentences closest in meaning to the question."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import numpy as np

from rag.answer.answerer import AnswerRequest, Rewrite
from rag.answer.citations import citations_for
from rag.answer.conversation import Conversation
from rag.answer.rewrite import offline_standalone
from rag.answer.types import AnswerCitations, AnswerDelta, AnswerDone, AnswerEvent, Usage
from rag.answer.usage import context_usage, token_usage
from rag.chunking import sentence_spans
from rag.embeddings import Embedder
from rag.records import Collection
from rag.retrieval import Hit
from rag.tokens import count_tokens

EXTRACTIVE = "extractive"
"""The model name of this answerer: it needs no key and no network."""
NO_ANSWER = "I could not find an answer to that in the documents."

_QUANTITY_QUESTION = re.compile(
    r"\s*(how (many|much|long|old|big|large|far|often)|when|what (year|date|time|percentage|price|cost))\b", re.I)


class ExtractiveAnswerer:
    """Answers with the best sentences of the passages, quoted as they stand and each cited.

    `embedder_for` gives the embedder of a collection (its own, so sentences and question are
    compared in the space the collection was built in); it is asked only when there are sentences.
    """

    def __init__(self, embedder_for: Callable[[Collection], Embedder]):
        self.embedder_for = embedder_for

    def standalone(self, conversation: Conversation, collection: Collection, model: str,
                   model_requested: bool = False) -> Rewrite:
        """The follow-up made to stand alone by rules (`rag.answer.rewrite`); no tokens spent."""
        embedder = self.embedder_for(collection)
        return Rewrite(offline_standalone(conversation, lambda texts: embedder.embed(texts, truncate=True)))

    def stream(self, request: AnswerRequest) -> Iterator[AnswerEvent]:
        """Quote the retrieved sentences closest in meaning to the question, each cited."""
        question, hits = request.retrieval_question, request.hits
        candidates: list[tuple[int, int, int, str]] = []  # (passage n, start, end, sentence)
        contexts: list[str] = []  # what is embedded: the sentence under its nearest heading
        for n, h in enumerate(hits, start=1):
            heading = h.section or h.title
            for a, b in sentence_spans(h.text):
                sentence = h.text[a:b]
                if _is_heading(sentence):
                    heading = sentence
                    continue
                if len(sentence) >= 20:
                    candidates.append((n, h.start_char + a, h.start_char + b, sentence))
                    # "It has 540 panels" only answers "how many panels on the school roof" once
                    # the reader knows it sits under "The school array".
                    contexts.append(f"{heading}: {sentence}" if heading else sentence)
        chosen: list[tuple[float, int, int, int, str]] = []
        if candidates:
            embedder = self.embedder_for(request.collection)
            q = embedder.embed_one(question)
            sims = embedder.embed(contexts, truncate=True) @ q
            sims = sims + np.array([_answer_type_bonus(question, c[3]) for c in candidates])
            best = float(sims.max())
            # Keep the best sentence and those nearly as good, at most three; a best match this
            # weak means the passages do not answer the question.
            if best >= 0.25:
                order = np.argsort(-sims, kind="stable")
                for i in order[:3]:
                    if sims[i] >= best - 0.1:
                        chosen.append((float(sims[i]), *candidates[i]))
        if not chosen:
            yield AnswerDelta(NO_ANSWER)
            yield AnswerCitations([])
            yield AnswerDone(EXTRACTIVE, _usage(request, NO_ANSWER))
            return
        # Quote each passage's chosen sentences as one span of its document's text.
        spans: dict[int, tuple[int, int]] = {}
        for _, n, a, b, _ in chosen:
            lo, hi = spans.get(n, (a, b))
            spans[n] = (min(lo, a), max(hi, b))
        quotes = {}
        for n, (a, b) in spans.items():
            h = hits[n - 1]
            quotes[n] = (a, b, h.text[a - h.start_char:b - h.start_char])
        # Passages in the order of their best sentence; within one, sentences in document order
        # (steps of a procedure stay in sequence). White space is folded for reading; the quotes
        # keep the exact text.
        rank: dict[int, int] = {}
        for _, n, _, _, _ in chosen:
            rank.setdefault(n, len(rank))
        chosen.sort(key=lambda c: (rank[c[1]], c[2]))
        # Cited 1..n in the order the passages first appear in the answer.
        number = {n: i for i, n in enumerate(dict.fromkeys(c[1] for c in chosen), start=1)}
        parts = [f"{' '.join(sentence.split())} [{number[n]}]" for _, n, _, _, sentence in chosen]
        text = " ".join(parts)
        for i, part in enumerate(parts):
            yield AnswerDelta(part if i == 0 else " " + part)
        cited = [n for _, n, _, _, _ in chosen]
        yield AnswerCitations(citations_for(hits, cited, quotes))
        yield AnswerDone(EXTRACTIVE, _usage(request, text))


def _answer_type_bonus(question: str, sentence: str) -> float:
    """Classic answer-type matching: a question for a number or a date prefers sentences that hold
    one, and "how many panels" prefers "540 panels" above all."""
    if not _QUANTITY_QUESTION.match(question) or not any(ch.isdigit() for ch in sentence):
        return 0.0
    m = re.match(r"\s*how (?:many|much)\s+(\w+?)(?:e?s)?\b", question, re.I)
    if m and re.search(rf"\d[\d,.]*\s+(?:\w+\s+)?{re.escape(m.group(1))}", sentence, re.I):
        return 0.2
    return 0.05


def _is_heading(span: str) -> bool:
    """A short line with no sentence punctuation at its end: a heading inside a chunk."""
    return len(span) < 80 and "\n" not in span and not span.rstrip().endswith((".", "!", "?", ":", ";", ","))


def _usage(request: AnswerRequest, answer: str) -> Usage:
    """Token counts in cl100k_base, so extractive answers report usage in the same units: what it
    read (the question, the passages) and what it wrote."""
    prompt = count_tokens(request.retrieval_question) + sum(count_tokens(h.text) for h in request.hits)
    return {**token_usage(prompt, count_tokens(answer)),
            "context": context_usage(passages_sent=len(request.hits), turns_sent=len(request.history))}


__all__ = ["EXTRACTIVE", "NO_ANSWER", "ExtractiveAnswerer"]
