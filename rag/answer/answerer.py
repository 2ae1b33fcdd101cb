"""The contract between the asker, which retrieves, and the answerers, which answer from passages."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from rag.answer.conversation import Conversation, Message
from rag.answer.types import AnswerEvent, Usage
from rag.records import Collection
from rag.retrieval import Hit


@dataclass(frozen=True)
class AnswerRequest:
    """A question with the passages retrieved for it and the caller's options, already checked."""

    question: str
    """The user's last message, as asked."""
    collection: Collection
    hits: Sequence[Hit]
    """The retrieved passages, best first: passage n is hits[n - 1]."""
    model: str
    model_requested: bool = False
    """The caller named the model (rather than taking the default), so a refusal of it is theirs."""
    temperature: float | None = None
    max_tokens: int | None = None
    history: tuple[Message, ...] = ()
    """The earlier user and assistant turns, oldest first."""
    instructions: tuple[str, ...] = ()
    """The caller's own system messages."""
    standalone: str | None = None
    """The question made to stand alone, which retrieval ran on (None: the question itself)."""

    @property
    def conversation(self) -> Conversation:
        return Conversation(self.question, self.history, self.instructions)

    @property
    def retrieval_question(self) -> str:
        return self.standalone or self.question


@dataclass(frozen=True)
class Rewrite:
    """A follow-up question made to stand alone, and what making it cost."""

    question: str
    usage: Usage = field(default_factory=dict)
    """Tokens of the rewrite call (prompt_tokens, completion_tokens, total_tokens); {} when none was made."""


class Answerer(Protocol):
    """Answers a question from numbered passages, as a stream of events."""

    def standalone(self, conversation: Conversation, collection: Collection, model: str,
                   model_requested: bool = False) -> Rewrite:
        """The conversation's last question made to stand alone, for retrieval. Asked only of a
        conversation that follows up on earlier turns."""
        ...

    def stream(self, request: AnswerRequest) -> Iterator[AnswerEvent]:
        """Events: `AnswerDelta` ..., one `AnswerCitations`, then `AnswerDone`.

        A failure the caller can still be told about as a status (bad input, an upstream that
        refuses to start) raises before the iterator is returned; a failure after the text began
        becomes one `AnswerFailed` event.
        """
        ...


__all__ = ["AnswerRequest", "Answerer", "Rewrite"]
