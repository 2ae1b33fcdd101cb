"""Retrieves passages for a question and hands them to the answerer its model names."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from rag import metrics
from rag.answer.answerer import Answerer, AnswerRequest, Rewrite
from rag.answer.cache import AnswerCache, cache_key
from rag.answer.chat import ChatAnswerer
from rag.answer.citations import tidy_removed_markers
from rag.answer.conversation import Conversation, conversation_from
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
from rag.answer.usage import finished_usage
from rag.config import Settings
from rag.errors import InvalidInput, UpstreamError
from rag.pricing import PriceTable
from rag.records import Collection
from rag.retrieval import DEFAULT_MODE, Hit, Retriever

if TYPE_CHECKING:
    import openai

DEFAULT_K = 5
"""Passages a chat model answers from when k is not given (an answerer may set its own `default_k`)."""


class Asker:
    """Retrieves passages for a question and answers from them.

    The model name picks the answerer: `extractive` (the offline one) and the names in
    `answerers` get theirs, and any other name goes to the chat model, which needs
    OPENAI_API_KEY. `openai_client` returns the OpenAI client for chat answers; it is called on
    the first chat answer, and by default makes one client for this asker from `settings`.
    """

    def __init__(self, retriever: Retriever, settings: Settings, *,
                 openai_client: Callable[[], openai.OpenAI] | None = None,
                 answerers: Mapping[str, Answerer] | None = None, prices: PriceTable | None = None,
                 cache: AnswerCache | None = None):
        self.retriever = retriever
        self.cache = cache
        """Where answers that come out the same every time are kept for replay (None: nowhere)."""
        self.settings = settings
        self.prices = prices if prices is not None else PriceTable.load(settings.price_table)
        """What chat models cost per token (answers from the offline answerers cost nothing)."""
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
                 mode: str = DEFAULT_MODE, filter: dict[str, Any] | None = None,
                 min_score: float | None = None) -> list[Hit]:
        """The passages to answer `question` from, best first (those scoring at least `min_score`,
        as search counts it)."""
        if not isinstance(question, str) or not question.strip():
            raise InvalidInput("question must be a non-empty string", param="question")
        return self.retriever.search(collection, question, k=k, mode=mode, filter=filter, min_score=min_score)

    def stream(self, collection: Collection | str, question: str | None = None, *,
               messages: list[Any] | None = None, k: int | None = None, mode: str = DEFAULT_MODE,
               filter: dict[str, Any] | None = None, model: str | None = None, temperature: float | None = None,
               max_tokens: int | None = None, min_score: float | None = None) -> Iterator[AnswerEvent]:
        """Events: `delta` {"text"} ..., one `citations` [...], then `done` {"model", "usage"}.

        Asked with one `question`, or with OpenAI's `messages` (the last user message is the
        question; the turns before it give it its meaning: retrieval runs on the question made
        to stand alone, and a chat model gets the conversation). `k` passages are read (None: the
        answerer's `default_k`, else DEFAULT_K). Input errors raise before the
        first event (so the API can answer 4xx); an upstream failure after streaming began becomes
        one `error` event.
        """
        conversation = conversation_from(question, messages)
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
        answerer = self.answerer_for(model)
        # Without k, the answerer's own depth: the offline one quotes only the units that answer, so
        # it reads more passages than a chat model, which is sent every passage it reads.
        k = getattr(answerer, "default_k", DEFAULT_K) if k is None else k
        # Only answers that come out the same every time are kept: extractive ones, and a chat
        # model's asked for at temperature 0.
        kept: tuple[str, int] | None = None
        if self.cache is not None and (model == EXTRACTIVE or temperature == 0):
            change = self.cache.change_number(collection)
            key = cache_key(collection=collection, change_number=change, answerer=type(answerer).__name__,
                            prompt_version=getattr(answerer, "prompt_version", ""), model=model,
                            base_url=None if model in self.answerers else self.settings.openai_base_url,
                            messages=conversation.normalised(), k=k, mode=mode, filter=filter, min_score=min_score,
                            max_tokens=max_tokens)
            replay = self.cache.get(key)
            if replay is not None:
                return iter(replay)
            kept = key, change
        rewrite = self.standalone(answerer, conversation, collection, model, requested)
        with metrics.operation("ask"):
            hits = self.retrieve(collection, rewrite.question, k=k, mode=mode, filter=filter, min_score=min_score)
        request = AnswerRequest(question=conversation.question, collection=collection, hits=hits, model=model,
                                model_requested=requested, temperature=temperature, max_tokens=max_tokens,
                                history=conversation.history, instructions=conversation.instructions,
                                standalone=rewrite.question)
        events = self._with_usage(metrics.observed_answer(answerer.stream(request)), rewrite.usage)
        if kept is not None and self.cache is not None:
            events = self.cache.keep(kept[0], collection, kept[1], events)
        return events

    def _with_usage(self, events: Iterator[AnswerEvent], rewrite: Usage) -> Iterator[AnswerEvent]:
        """The answerer's events, the last one's usage completed: the rewrite call's tokens and the
        estimated cost of everything (0 for an offline answerer; None for a model without a price)."""
        for event in events:
            if isinstance(event, AnswerDone):
                usage = finished_usage(event.usage, rewrite=rewrite)
                offline = event.model in self.answerers
                usage["cost_usd"] = 0.0 if offline else self.prices.cost(event.model, usage)
                event = AnswerDone(event.model, usage)
            yield event

    @staticmethod
    def standalone(answerer: Answerer, conversation: Conversation, collection: Collection, model: str,
                   model_requested: bool = False) -> Rewrite:
        """The question retrieval runs on: as asked, or made to stand alone by the answerer when
        earlier turns may give it its meaning."""
        if not conversation.follows_up:
            return Rewrite(conversation.question)
        return answerer.standalone(conversation, collection, model, model_requested)

    def answer(self, collection: Collection | str, question: str | None = None, **options: Any) -> Answer:
        """The whole answer at once; an upstream failure midway raises `UpstreamError`. Options as
        `stream`'s."""
        text: list[str] = []
        citations: list[Citation] = []
        answered_by = ""
        usage: Usage = {}
        for event in self.stream(collection, question, **options):
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
