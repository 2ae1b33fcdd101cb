"""What answering produces: citations, whole answers and the events of a streamed answer.

A streamed answer is a sequence of events, one class per kind, each with a literal `type` (the
Server-Sent Event name) so a consumer can narrow on `event.type == "delta"` or with `match`, and a
`data` property holding the event's JSON payload exactly as the service sends it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, Literal, TypeAlias, TypedDict

Usage: TypeAlias = dict[str, Any]
"""Token counts in OpenAI's `usage` shape (`prompt_tokens`, ...; a chat model may add details)."""


@dataclass(frozen=True)
class Citation:
    """One passage an answer cites, with the exact text it quotes from the document."""

    index: int
    """The number the answer cites this passage by, [index]: 1..n in the order first cited."""
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
    """The retrieval score of the cited passage."""
    passage: int = 0
    """The passage's rank in retrieval (1 = best): the number a chat model saw it under."""


@dataclass
class Answer:
    """A whole answer: its text with `[n]` markers, the citations they point at, and who answered."""

    answer: str
    citations: list[Citation]
    model: str
    usage: Usage = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The answer as the service sends it: {answer, citations, model, usage}."""
        return {"answer": self.answer, "citations": [asdict(c) for c in self.citations],
                "model": self.model, "usage": self.usage}


class DeltaData(TypedDict):
    text: str


class DoneData(TypedDict):
    model: str
    usage: Usage


class FailedData(TypedDict):
    message: str
    status: int


@dataclass(frozen=True)
class AnswerDelta:
    """The next piece of the answer's text, with its citation markers already checked."""

    type: ClassVar[Literal["delta"]] = "delta"
    text: str

    @property
    def data(self) -> DeltaData:
        return {"text": self.text}


@dataclass(frozen=True)
class AnswerCitations:
    """The citations of the whole answer, by index (the order first cited); sent once, after the text."""

    type: ClassVar[Literal["citations"]] = "citations"
    citations: list[Citation]

    @property
    def data(self) -> list[dict[str, Any]]:
        return [asdict(c) for c in self.citations]


@dataclass(frozen=True)
class AnswerDone:
    """The last event of a complete answer: the model that answered and the tokens it took."""

    type: ClassVar[Literal["done"]] = "done"
    model: str
    usage: Usage

    @property
    def data(self) -> DoneData:
        return {"model": self.model, "usage": self.usage}


@dataclass(frozen=True)
class AnswerFailed:
    """The upstream failed after the stream began: the last event, in place of citations and done."""

    type: ClassVar[Literal["error"]] = "error"
    message: str
    status: int
    """The HTTP status the failure would have had before the stream began (429, 502, 504...)."""

    @property
    def data(self) -> FailedData:
        return {"message": self.message, "status": self.status}


AnswerEvent: TypeAlias = AnswerDelta | AnswerCitations | AnswerDone | AnswerFailed
"""One server-sent event of a streamed answer: delta ..., citations, done; or error."""

__all__ = [
    "Answer",
    "AnswerCitations",
    "AnswerDelta",
    "AnswerDone",
    "AnswerEvent",
    "AnswerFailed",
    "Citation",
    "DeltaData",
    "DoneData",
    "FailedData",
    "Usage",
]
