"""Answers from an OpenAI-compatible chat model, streamed through the citation filter."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from rag.answer.answerer import AnswerRequest, Rewrite
from rag.answer.citations import CitationFilter, citations_for
from rag.answer.conversation import Conversation
from rag.answer.prompt import DEFAULT_MAX_TOKENS, SYSTEM_PROMPT, fit_conversation
from rag.answer.types import AnswerCitations, AnswerDelta, AnswerDone, AnswerEvent, AnswerFailed, Usage
from rag.answer.usage import context_usage, token_usage
from rag.errors import InvalidInput
from rag.records import Collection
from rag.retrieval import Hit
from rag.tokens import context_window, count_chat_tokens

if TYPE_CHECKING:  # the SDK is imported when a chat answer is first asked for, not with this module
    import openai
    from openai.types.chat import ChatCompletionChunk

REWRITE_PROMPT = (
    "Rewrite the user's last message as one standalone question that can be understood without the "
    "conversation before it: name what its pronouns and short phrases refer to. Keep its language and "
    "meaning, and do not answer it. Reply with the question only."
)
PROMPT_VERSION = hashlib.sha256(f"{SYSTEM_PROMPT}\n{REWRITE_PROMPT}".encode()).hexdigest()[:16]
"""Part of the answer cache's key: a changed prompt never replays an answer to the old one."""
REWRITE_REPLY_TOKENS = 256
"""Room kept for the rewritten question when fitting the conversation into the window."""


class ChatAnswerer:
    """Answers with a chat model: the conversation and the passages that fit its window, its reply
    streamed and checked.

    `client` returns the OpenAI client to use. It is called on the first answer, not before, so a
    service without OPENAI_API_KEY fails (with `MissingCredentials`) only when a chat answer is
    actually asked for; the client it returns is kept for every later answer.
    """

    prompt_version = PROMPT_VERSION

    def __init__(self, client: Callable[[], openai.OpenAI], *, context_tokens: int | None = None):
        """`context_tokens` is the model's window when tiktoken does not know it (RAG_CHAT_CONTEXT_TOKENS)."""
        self._make_client = client
        self._client: openai.OpenAI | None = None
        self.context_tokens = context_tokens

    def client(self) -> openai.OpenAI:
        """The OpenAI client, asked of the provider on first use."""
        # Two threads arriving first may both ask; the provider's clients are interchangeable.
        if self._client is None:
            self._client = self._make_client()
        return self._client

    def _create(self, options: dict[str, Any], model_requested: bool) -> Any:
        """One chat completions call, the SDK's errors translated (a refusal of a model the caller
        named is theirs to fix: 400)."""
        import openai

        from rag.openai_client import translate_openai_error

        client = self.client()
        try:
            return client.chat.completions.create(**options)
        except (openai.BadRequestError, openai.NotFoundError) as e:
            if model_requested:
                raise InvalidInput(f"the upstream refused model {options['model']!r} ({e.status_code}): "
                                   f"{translate_openai_error(e)}", param="model") from e
            raise translate_openai_error(e) from e
        except Exception as e:  # the SDK's errors, after its retries
            raise translate_openai_error(e) from e

    def standalone(self, conversation: Conversation, collection: Collection, model: str,
                   model_requested: bool = False) -> Rewrite:
        """One short call that rewrites the last question to stand alone; the newest turns that fit
        the window go with it. An empty reply leaves the question as asked."""
        window = context_window(model, self.context_tokens)
        asked = Conversation(conversation.question, conversation.history)
        fitted = fit_conversation(asked, [], model, window, REWRITE_REPLY_TOKENS)
        messages = [{"role": "system", "content": REWRITE_PROMPT}, *fitted.history,
                    {"role": "user", "content": conversation.question}]
        reply = self._create({"model": model, "messages": messages}, model_requested)
        text = (reply.choices[0].message.content or "").strip() if reply.choices else ""
        if reply.usage:
            usage = token_usage(reply.usage.prompt_tokens, reply.usage.completion_tokens)
        else:
            usage = token_usage(count_chat_tokens(messages, model), 0)
        return Rewrite(text or conversation.question, usage)

    def stream(self, request: AnswerRequest) -> Iterator[AnswerEvent]:
        """Opens the chat model's stream and relays it; see `Answerer.stream`.

        A prompt that cannot fit, a refused model and an upstream that fails to start raise here.
        """
        model = request.model
        window = context_window(model, self.context_tokens)
        fitted = fit_conversation(request.conversation, request.hits, model, window,
                                  request.max_tokens or DEFAULT_MAX_TOKENS)
        options: dict[str, Any] = {"model": model, "messages": fitted.messages, "stream": True,
                                   "stream_options": {"include_usage": True}}
        if request.temperature is not None:
            options["temperature"] = request.temperature
        if request.max_tokens is not None:
            options["max_completion_tokens"] = request.max_tokens
        # Opening the stream raises for 4xx/5xx/timeouts before any event is produced.
        stream = self._create(options, request.model_requested)
        context = context_usage(passages_sent=len(fitted.hits), passages_dropped=fitted.passages_dropped,
                                turns_sent=len(fitted.history), turns_dropped=fitted.turns_dropped)
        return _relay(stream, fitted.hits, model, fitted.messages, context)


def _relay(stream: Iterable[ChatCompletionChunk], hits: list[Hit], model: str,
           messages: list[dict[str, str]], context: dict[str, int]) -> Iterator[AnswerEvent]:
    """The model's reply as events, markers checked and numbered 1..n in the order first cited; a
    failure mid-stream is one `AnswerFailed`."""
    from rag.openai_client import translate_openai_error

    filt = CitationFilter(len(hits), renumber=True)
    usage: Usage = {}
    answered_by = model
    try:
        for chunk in stream:
            answered_by = chunk.model or answered_by
            if chunk.usage:
                usage = chunk.usage.model_dump(exclude_none=True)
            for choice in chunk.choices:
                text = filt.feed(choice.delta.content or "")
                if text:
                    yield AnswerDelta(text)
    except Exception as e:
        err = translate_openai_error(e)
        yield AnswerFailed(str(err), err.status)
        return
    rest = filt.finish()
    if rest:
        yield AnswerDelta(rest)
    if not usage:
        usage = {"prompt_tokens": count_chat_tokens(messages, model)}
    yield AnswerCitations(citations_for(hits, filt.cited))
    yield AnswerDone(answered_by, {**usage, "context": context})


__all__ = ["REWRITE_PROMPT", "ChatAnswerer"]
