"""Answers from an OpenAI-compatible chat model, streamed through the citation filter."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from rag.answer.answerer import AnswerRequest, Rewrite
from rag.answer.citations import CitationFilter, citations_for
from rag.answer.conversation import Conversation
from rag.answer.prompt import DEFAULT_MAX_TOKENS, SYSTEM_PROMPT, fit_conversation
from rag.answer.types import AnswerCitations, AnswerDelta, AnswerDone, AnswerEvent, AnswerFailed, Usage
from rag.answer.usage import context_usage, token_usage
from rag.errors import InvalidInput, UpstreamMalformed
from rag.records import Collection
from rag.retrieval import Hit
from rag.tokens import context_window, count_chat_tokens
from rag.upstream_replies import EVENT_STREAM, JSON, HTTPResponse, check_reply, chunk_parts, json_reply, stream_data

if TYPE_CHECKING:  # the SDK is imported when a chat answer is first asked for, not with this module
    import openai

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

    def _call(self, options: dict[str, Any], model_requested: bool) -> HTTPResponse:
        """One chat completions call with the service's retries (rag.openai_client), its raw reply
        checked to be a 200 of the media type asked for (an event stream when `options` stream);
        the SDK's errors translated (a refusal of a model the caller named is theirs to fix: 400)."""
        import openai

        from rag.openai_client import call_with_retries, translate_openai_error

        client = self.client()
        try:
            raw = call_with_retries(client, lambda c: c.chat.completions.with_raw_response.create(**options))
            try:
                check_reply(raw.http_response, EVENT_STREAM if options.get("stream") else JSON)
            except UpstreamMalformed:
                raw.http_response.close()
                raise
        except (openai.BadRequestError, openai.NotFoundError) as e:
            if model_requested:
                raise InvalidInput(f"the upstream refused model {options['model']!r} ({e.status_code}): "
                                   f"{translate_openai_error(e)}", param="model") from e
            raise translate_openai_error(e) from e
        except Exception as e:  # the SDK's errors, after the retries
            raise translate_openai_error(e) from e
        return raw.http_response

    def standalone(self, conversation: Conversation, collection: Collection, model: str,
                   model_requested: bool = False) -> Rewrite:
        """One short call that rewrites the last question to stand alone; the newest turns that fit
        the window go with it. An empty reply leaves the question as asked."""
        window = context_window(model, self.context_tokens)
        asked = Conversation(conversation.question, conversation.history)
        fitted = fit_conversation(asked, [], model, window, REWRITE_REPLY_TOKENS)
        messages = [{"role": "system", "content": REWRITE_PROMPT}, *fitted.history,
                    {"role": "user", "content": conversation.question}]
        response = self._call({"model": model, "messages": messages}, model_requested)
        text, tokens = _rewrite_reply(response)
        usage = token_usage(*tokens) if tokens else token_usage(count_chat_tokens(messages, model), 0)
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
        # Opening the stream raises for 4xx/5xx/timeouts, and for a reply that is not an event
        # stream, before any event is produced. The raw reply: its events are checked here.
        response = self._call(options, request.model_requested)
        context = context_usage(passages_sent=len(fitted.hits), passages_dropped=fitted.passages_dropped,
                                turns_sent=len(fitted.history), turns_dropped=fitted.turns_dropped)
        return _relay(response, fitted.hits, model, fitted.messages, context)


def _relay(response: HTTPResponse, hits: list[Hit], model: str,
           messages: list[dict[str, str]], context: dict[str, int]) -> Iterator[AnswerEvent]:
    """The model's reply as events, markers checked and numbered 1..n in the order first cited; a
    failure mid-stream is one `AnswerFailed`, and so is a stream that ends before the model finished
    (no chunk, no `finish_reason`, no `[DONE]`): a cut-off or empty reply is never passed off as a
    complete answer."""
    from rag.openai_client import translate_openai_error

    filt = CitationFilter(len(hits), renumber=True)
    usage: Usage = {}
    answered_by = model
    chunks, finished, done = 0, False, False
    try:
        for chunk in stream_data(response):
            if chunk is None:
                done = True
                break
            chunk_model, texts, chunk_finished, chunk_usage = chunk_parts(response, chunk)
            chunks += 1
            finished = finished or chunk_finished
            answered_by = chunk_model or answered_by
            if chunk_usage:
                usage = {k: v for k, v in chunk_usage.items() if v is not None}
            for piece in texts:
                text = filt.feed(piece)
                if text:
                    yield AnswerDelta(text)
        if not chunks:
            raise UpstreamMalformed("the OpenAI upstream sent an event stream without any completion chunk")
        if not (finished or done):
            raise UpstreamMalformed("the OpenAI upstream's stream ended before the answer finished "
                                    "(no finish_reason, no [DONE])")
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


def _rewrite_reply(response: HTTPResponse) -> tuple[str, tuple[int, int] | None]:
    """The rewritten question of a (non-streamed) completion, and its (prompt, completion) tokens
    when the upstream counted them; any other shape is the upstream's fault (502)."""
    reply = json_reply(response)
    choices = reply.get("choices")
    message = choices[0].get("message") if isinstance(choices, list) and choices and isinstance(choices[0], dict) \
        else None
    content = message.get("content") if isinstance(message, dict) else None
    if not isinstance(message, dict) or not isinstance(content, str | None):
        raise UpstreamMalformed("the OpenAI upstream sent a malformed reply: a completion without "
                                "choices[0].message.content", request_id=response.headers.get("x-request-id"))
    usage = reply.get("usage")
    tokens = None
    if isinstance(usage, dict) and all(isinstance(usage.get(k), int) for k in ("prompt_tokens", "completion_tokens")):
        tokens = usage["prompt_tokens"], usage["completion_tokens"]
    return (content or "").strip(), tokens


__all__ = ["REWRITE_PROMPT", "ChatAnswerer"]
