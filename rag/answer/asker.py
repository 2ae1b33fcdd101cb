"""Retrieves passages for a question and hands them to the answerer its model names."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from rag import metrics
from rag.answer.answerer import Answerer, AnswerRequest
from rag.answer.chat import ChatAnswerer
from rag.answer.citations import tidy_removed_markers
from rag.answer.extractive import EXTRACTIVE, ExtractiveAnswerer
from rag.answer.types import (
    Answer,
    AnswerCitations,
    AnswerDelta,
    AnswerDone,
    AnswerEvent,
    AnswerFailed,
    Citation,
    Usage,
)
from rag.config import Settings
from rag.errors import InvalidInput, UpstreamError
from rag.records import Collection
from rag.retrieval import DEFAULT_MODE, Hit, Retriever

if TYPE_CHECKING:
    import openai

DEFAULT_K = 5


class Asker:
    """Retrieves passages for a question and answers from them.

    The model name picks the answerer: `extractive` (the offline one) and the names in
    `answerers` get theirs, and any other name goes to the chat model, which needs
    OPENAI_API_KEY. `openai_client` returns the OpenAI client for chat answers; it is called on
    the first chat answer, and by default makes one client for this asker from `settings`.
    """

    def __init__(self, retriever: Retriever, settings: Settings, *,
                 openai_client: Callable[[], openai.OpenAI] | None = None,
                 answerers: Mapping[str, Answerer] | None = None):
        self.retriever = retriever
        self.settings = settings
        self.chat = ChatAnswerer(openai_client or _client_from(settings),
                                 context_tokens=settings.chat_context_tokens)
        """Answers for every model name not in `answerers`."""
        self.answerers: dict[str, Answerer] = {EXTRACTIVE: ExtractiveAnswerer(retriever.embedder_for),
                                               **(answerers or {})}
        """The answerers that need no key, by model name."""

    def resolve_model(self, model: str | None) -> str:
        """The model that answers when the caller asks for `model` (None: the default).

        The default is the chat model with a key and `extractive` without; a chat model asked for
        without a key is refused.
        """
        if model is None:
            return self.settings.chat_model if self.settings.openai_enabled else EXTRACTIVE
        if model not in self.answerers and not self.settings.openai_enabled:
            offline = ", ".join(repr(name) for name in self.answerers)
            raise InvalidInput(
                f"model {model!r} needs OPENAI_API_KEY on the server; without it only {offline} answers",
                param="model")
        return model

    def answerer_for(self, model: str) -> Answerer:
        """The answerer of a resolved model name."""
        return self.answerers.get(model, self.chat)

    def retrieve(self, collection: Collection | str, question: str, *, k: int = DEFAULT_K,
                 mode: str = DEFAULT_MODE, filter: dict[str, Any] | None = None) -> list[Hit]:
        """The passages to answer `question` from, best first."""
        if not isinstance(question, str) or not question.strip():
            raise InvalidInput("question must be a non-empty string", param="question")
        return self.retriever.search(collection, question, k=k, mode=mode, filter=filter)

    def stream(self, collection: Collection | str, question: str, *, k: int = DEFAULT_K,
               mode: str = DEFAULT_MODE, filter: dict[str, Any] | None = None, model: str | None = None,
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
        with metrics.operation("ask"):
            hits = self.retrieve(collection, question, k=k, mode=mode, filter=filter)
        request = AnswerRequest(question=question, collection=collection, hits=hits, model=model,
                                model_requested=requested, temperature=temperature, max_tokens=max_tokens)
        return metrics.observed_answer(self.answerer_for(model).stream(request))

    def answer(self, collection: Collection | str, question: str, *, k: int = DEFAULT_K,
               mode: str = DEFAULT_MODE, filter: dict[str, Any] | None = None, model: str | None = None,
               temperature: float | None = None, max_tokens: int | None = None) -> Answer:
        """The whole answer at once; an upstream failure midway raises `UpstreamError`."""
        text: list[str] = []
        citations: list[Citation] = []
        answered_by = ""
        usage: Usage = {}
        for event in self.stream(collection, question, k=k, mode=mode, filter=filter, model=model,
                                 temperature=temperature, max_tokens=max_tokens):
            match event:
                case AnswerDelta():
                    text.append(event.text)
                case AnswerCitations():
                    citations = event.citations
                case AnswerDone():
                    answered_by, usage = event.model, event.usage
                case AnswerFailed():
                    raise UpstreamError.for_status(event.status, event.message)
        return Answer(tidy_removed_markers("".join(text)), citations, answered_by, usage)


def _client_from(settings: Settings) -> Callable[[], openai.OpenAI]:
    """A provider that makes a client from `settings` each time it is called (the answerer keeps one)."""

    def make() -> openai.OpenAI:
        from rag.openai_client import make_client

        return make_client(settings)

    return make


__all__ = ["DEFAULT_K", "Asker"]
