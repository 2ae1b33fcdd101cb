"""Answers with citations people can check.

Retrieved chunks become numbered passages; the answer cites them as `[n]`. Every marker is checked
against the passages: numbers that match no passage are removed, never passed on, and the same
filter runs over streamed text (text from a `[` is held back until its `]` is seen). Two
answerers: OpenAI chat completions when a key is configured, and an offline extractive one that
quotes the retrieved sentences closest in meaning to the question.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import openai

from rag.chunking import sentence_spans
from rag.config import Settings
from rag.errors import InvalidInput, UpstreamError
from rag.retrieval import DEFAULT_MODE, Hit, Retriever
from rag.store import Collection
from rag.tokens import context_window, count_chat_tokens, count_tokens

EXTRACTIVE = "extractive"
DEFAULT_K = 5
DEFAULT_MAX_TOKENS = 1024  # reserved for the reply when fitting passages into the model's window

SYSTEM_PROMPT = (
    "You answer questions using only the numbered passages the user provides. "
    "After each statement, cite the passages that support it by number in square brackets, "
    "like [1] or [2][3]. Cite only numbers that appear in the passages. If the passages do not "
    "contain the answer, say that you could not find it in the documents."
)
NO_ANSWER = "I could not find an answer to that in the documents."

# [1], [1, 2], [1][2] — numbers only; other bracketed text is left alone.
_MARKER = re.compile(r"\[(\d+(?:\s*[,;]\s*\d+)*)\]")
_MAX_MARKER = 24  # a held-back "[..." longer than this is not a marker


@dataclass(frozen=True)
class Citation:
    index: int
    """The passage number the answer cites as [index]."""
    document_id: int
    chunk_id: int
    source: str
    title: str | None
    page: int | None
    start_char: int
    end_char: int
    """Span of `quote` in the document's stored text: text[start_char:end_char] == quote."""
    quote: str
    score: float


@dataclass
class Answer:
    answer: str
    citations: list[Citation]
    model: str
    usage: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"answer": self.answer, "citations": [asdict(c) for c in self.citations],
                "model": self.model, "usage": self.usage}


@dataclass(frozen=True)
class AnswerEvent:
    """One server-sent event of a streamed answer: delta, citations, done or error."""

    type: str
    data: dict | list


class CitationFilter:
    """Removes citation markers that point at no passage, from whole or streamed text."""

    def __init__(self, passages: int):
        self.passages = passages
        self.cited: list[int] = []
        self._held = ""

    def _check(self, marker: str) -> str:
        m = _MARKER.fullmatch(marker)
        if not m:
            return marker  # "[see above]" and the like are ordinary text
        numbers = [int(x) for x in re.split(r"\s*[,;]\s*", m.group(1))]
        valid = [x for x in numbers if 1 <= x <= self.passages]
        for x in valid:
            if x not in self.cited:
                self.cited.append(x)
        return "".join(f"[{x}]" for x in valid)

    def feed(self, text: str) -> str:
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
                if len(rest) <= _MAX_MARKER and re.fullmatch(r"\[[\d,;\s]*", rest):
                    self._held = rest  # maybe the start of a marker: wait for more text
                else:
                    out.append(rest)
                break
            marker = buf[j:k + 1]
            if _MARKER.fullmatch(marker):
                out.append(self._check(marker))
                i = k + 1
            else:  # "[see [9]": keep the "[" as text and look again from the next character
                out.append("[")
                i = j + 1
        return "".join(out)

    def finish(self) -> str:
        rest, self._held = self._held, ""
        return rest


def number_passages(hits: list[Hit]) -> str:
    blocks = []
    for n, h in enumerate(hits, start=1):
        label = h.title or h.source.rsplit("/", 1)[-1]
        if h.page:
            label += f", page {h.page}"
        blocks.append(f"[{n}] ({label})\n{h.text.strip()}")
    return "\n\n".join(blocks)


def build_messages(question: str, hits: list[Hit]) -> list[dict]:
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": f"Passages:\n\n{number_passages(hits)}\n\nQuestion: {question}"},
    ]


def fit_to_window(question: str, hits: list[Hit], model: str, window: int, reply_tokens: int) -> list[Hit]:
    """The longest prefix of `hits` whose prompt leaves `reply_tokens` free in the window."""
    budget = window - reply_tokens
    if count_chat_tokens(build_messages(question, []), model) > budget:
        raise InvalidInput("the question alone does not fit the chat model's context window", param="question")
    kept: list[Hit] = []
    for hit in hits:
        if count_chat_tokens(build_messages(question, [*kept, hit]), model) > budget:
            break
        kept.append(hit)
    return kept


def citations_for(hits: list[Hit], cited: list[int], quotes: dict[int, tuple[int, int, str]] | None = None
                  ) -> list[Citation]:
    """Citations for the passage numbers the answer used, in number order."""
    out = []
    for n in sorted(set(cited)):
        h = hits[n - 1]
        start, end, quote = (quotes or {}).get(n, (h.start_char, h.end_char, h.text))
        out.append(Citation(index=n, document_id=h.document_id, chunk_id=h.chunk_id, source=h.source,
                            title=h.title, page=h.page, start_char=start, end_char=end, quote=quote,
                            score=h.score))
    return out


class Asker:
    """Retrieves passages for a question and answers from them."""

    def __init__(self, retriever: Retriever, settings: Settings, *, client: Callable[[], openai.OpenAI]):
        self.retriever = retriever
        self.settings = settings
        self.client = client
        """Provider of the OpenAI client, called only when a chat model answers."""

    def resolve_model(self, model: str | None) -> str:
        if model is None:
            return self.settings.chat_model if self.settings.openai_enabled else EXTRACTIVE
        if model != EXTRACTIVE and not self.settings.openai_enabled:
            raise InvalidInput(
                f"model {model!r} needs OPENAI_API_KEY on the server; without it only "
                f"{EXTRACTIVE!r} answers", param="model")
        return model

    def retrieve(self, collection: Collection | str, question: str, *, k: int = DEFAULT_K,
                 mode: str = DEFAULT_MODE, filter: dict | None = None) -> list[Hit]:
        if not isinstance(question, str) or not question.strip():
            raise InvalidInput("question must be a non-empty string", param="question")
        return self.retriever.search(collection, question, k=k, mode=mode, filter=filter)

    def stream(self, collection: Collection | str, question: str, *, k: int = DEFAULT_K,
               mode: str = DEFAULT_MODE, filter: dict | None = None, model: str | None = None,
               temperature: float | None = None, max_tokens: int | None = None) -> Iterator[AnswerEvent]:
        """Events: `delta` {"text"} ..., one `citations` [...], then `done` {"model", "usage"}.

        Input errors raise before the first event (so the API can answer 4xx); an upstream
        failure after streaming began becomes one `error` event.
        """
        requested = model is not None
        model = self.resolve_model(model)
        if isinstance(collection, str):
            collection = self.retriever.store.get_collection(collection)
        if max_tokens is not None and (not isinstance(max_tokens, int) or isinstance(max_tokens, bool)
                                       or max_tokens < 1):
            raise InvalidInput("max_tokens must be a whole number of at least 1", param="max_tokens")
        if temperature is not None and (not isinstance(temperature, (int, float)) or isinstance(temperature, bool)
                                        or not 0 <= temperature <= 2):
            raise InvalidInput("temperature must be a number between 0 and 2", param="temperature")
        hits = self.retrieve(collection, question, k=k, mode=mode, filter=filter)
        if model == EXTRACTIVE:
            return self._extractive(collection, question, hits)
        window = context_window(model, self.settings.chat_context_tokens)
        hits = fit_to_window(question, hits, model, window, max_tokens or DEFAULT_MAX_TOKENS)
        return self._chat(question, hits, model, temperature, max_tokens, requested)

    def answer(self, collection: Collection | str, question: str, **options) -> Answer:
        text, citations, done = [], [], {}
        for event in self.stream(collection, question, **options):
            if event.type == "delta":
                text.append(event.data["text"])
            elif event.type == "citations":
                citations = event.data
            elif event.type == "done":
                done = event.data
            elif event.type == "error":
                raise UpstreamError.for_status(event.data["status"], event.data["message"])
        # Tidy the space a removed marker leaves before punctuation.
        answer = re.sub(r"[ \t]+([.,;:!?])", r"\1", "".join(text))
        answer = re.sub(r"(?<=\S)[ \t]{2,}(?=\S)", " ", answer).strip()
        return Answer(answer, [Citation(**c) for c in citations], done.get("model", ""), done.get("usage", {}))

    # -- the chat model --------------------------------------------------------------------------

    def _chat(self, question: str, hits: list[Hit], model: str, temperature: float | None,
              max_tokens: int | None, requested: bool = False) -> Iterator[AnswerEvent]:
        import openai

        from rag.openai_client import translate_openai_error

        messages = build_messages(question, hits)
        options: dict = {"model": model, "messages": messages, "stream": True,
                         "stream_options": {"include_usage": True}}
        if temperature is not None:
            options["temperature"] = temperature
        if max_tokens is not None:
            options["max_completion_tokens"] = max_tokens
        client = self.client()
        try:
            # Opening the stream raises for 4xx/5xx/timeouts before any event is produced.
            stream = client.chat.completions.create(**options)
        except (openai.BadRequestError, openai.NotFoundError) as e:
            if requested:  # the caller named the model: the upstream's refusal is the caller's to fix
                raise InvalidInput(f"the upstream refused model {model!r} ({e.status_code}): "
                                   f"{translate_openai_error(e)}", param="model") from e
            raise translate_openai_error(e) from e
        except Exception as e:  # the SDK's errors, after its retries
            raise translate_openai_error(e) from e
        return self._relay(stream, hits, model, messages)

    def _relay(self, stream, hits: list[Hit], model: str, messages: list[dict]) -> Iterator[AnswerEvent]:
        from rag.openai_client import translate_openai_error

        filt = CitationFilter(len(hits))
        usage: dict = {}
        answered_by = model
        try:
            for chunk in stream:
                answered_by = chunk.model or answered_by
                if chunk.usage:
                    usage = chunk.usage.model_dump(exclude_none=True)
                for choice in chunk.choices:
                    text = filt.feed(choice.delta.content or "")
                    if text:
                        yield AnswerEvent("delta", {"text": text})
        except Exception as e:
            err = translate_openai_error(e)
            yield AnswerEvent("error", {"message": str(err), "status": err.status})
            return
        rest = filt.finish()
        if rest:
            yield AnswerEvent("delta", {"text": rest})
        if not usage:
            usage = {"prompt_tokens": count_chat_tokens(messages, model)}
        yield AnswerEvent("citations", [asdict(c) for c in citations_for(hits, filt.cited)])
        yield AnswerEvent("done", {"model": answered_by, "usage": usage})

    # -- the offline answerer --------------------------------------------------------------------

    def _extractive(self, collection: Collection, question: str, hits: list[Hit]) -> Iterator[AnswerEvent]:
        """Quote the retrieved sentences closest in meaning to the question, each cited."""
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
            embedder = self.retriever.embedder_for(collection)
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
            yield AnswerEvent("delta", {"text": NO_ANSWER})
            yield AnswerEvent("citations", [])
            yield AnswerEvent("done", {"model": EXTRACTIVE, "usage": _usage(question, hits, NO_ANSWER)})
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
        parts = [f"{' '.join(sentence.split())} [{n}]" for _, n, _, _, sentence in chosen]
        text = " ".join(parts)
        for i, part in enumerate(parts):
            yield AnswerEvent("delta", {"text": part if i == 0 else " " + part})
        cited = [n for _, n, _, _, _ in chosen]
        yield AnswerEvent("citations", [asdict(c) for c in citations_for(hits, cited, quotes)])
        yield AnswerEvent("done", {"model": EXTRACTIVE, "usage": _usage(question, hits, text)})


_QUANTITY_QUESTION = re.compile(
    r"\s*(how (many|much|long|old|big|large|far|often)|when|what (year|date|time|percentage|price|cost))\b", re.I)


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


def _usage(question: str, hits: list[Hit], answer: str) -> dict:
    """Token counts in cl100k_base, so extractive answers report usage in the same units."""
    prompt = count_tokens(question) + sum(count_tokens(h.text) for h in hits)
    completion = count_tokens(answer)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


__all__ = ["EXTRACTIVE", "Answer", "AnswerEvent", "Asker", "Citation", "CitationFilter", "build_messages",
           "fit_to_window"]
