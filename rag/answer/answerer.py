"""The contract between the asker, which retrieves, and the answerers, which answer from passages."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from rag.answer.types import AnswerEvent
from rag.records import Collection
from rag.retrieval import Hit


@dataclass(frozen=True)
class AnswerRequest:
    """A question with the passages retrieved for it and the caller's options, already checked."""

    question: str
    collection: Collection
    hits: Sequence[Hit]
    """The retrieved passages, best first; the answer cites hits[n - 1] as [n]."""
    model: str
    model_requested: bool = False
    """The caller named the model (rather than taking the default), so a refusal of it is theirs."""
    temperature: float | None = None
    max_tokens: int | None = None


class Answerer(Protocol):
    """Answers a question from numbered passages, as a stream of events."""

    def stream(self, request: AnswerRequest) -> Iterator[AnswerEvent]:
        """Events: `AnswerDelta` ..., one `AnswerCitations`, then `AnswerDone`.

        A failure the caller can still be told about as a status (bad input, an upstream that
        refuses to start) raises before the iterator is returned; a failure after the text began
        becomes one `AnswerFailed` event.
        """
        ...


__all__ = ["AnswerRequest", "Answerer"]
