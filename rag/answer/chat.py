"""Answers from an OpenAI-compatible chat model, streamed through the citation filter."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from rag.answer.answerer import AnswerRequest
from rag.answer.citations import CitationFilter, citations_for
from rag.answer.prompt import DEFAULT_MAX_TOKENS, build_messages, fit_to_window
from rag.answer.types import AnswerCitations, AnswerDelta, AnswerDone, AnswerEvent, AnswerFailed, Usage
from rag.errors import InvalidInput, UpstreamMalformed
from rag.retrieval import Hit
from rag.tokens import context_window, count_chat_tokens
from rag.upstream_replies import EVENT_STREAM, HTTPResponse, check_reply, chunk_parts, stream_data

if TYPE_CHECKING:  # the SDK is imported when a chat answer is first asked for, not with this module
    import openai


class ChatAnswerer:
    """Answers with a chat model: the passages that fit its window, its reply streamed and checked.

    `client` returns the OpenAI client to use. It is called on the first answer, not before, so a
    service without OPENAI_API_KEY fails (with `MissingCredentials`) only when a chat answer is
    actually asked for; the client it returns is kept for every later answer.
    """

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

    def stream(self, request: AnswerRequest) -> Iterator[AnswerEvent]:
        """Opens the chat model's stream and relays it; see `Answerer.stream`.

        A prompt that cannot fit, a refused model and an upstream that fails to start raise here.
        """
        import openai

        from rag.openai_client import call_with_retries, translate_openai_error

        model = request.model
        window = context_window(model, self.context_tokens)
        hits = fit_to_window(request.question, request.hits, model, window,
                             request.max_tokens or DEFAULT_MAX_TOKENS)
        messages = build_messages(request.question, hits)
        options: dict[str, Any] = {"model": model, "messages": messages, "stream": True,
                                   "stream_options": {"include_usage": True}}
        if request.temperature is not None:
            options["temperature"] = request.temperature
        if request.max_tokens is not None:
            options["max_completion_tokens"] = request.max_tokens
        client = self.client()
        try:
            # Opening the stream raises for 4xx/5xx/timeouts, and for a reply that is not an event
            # stream, before any event is produced. The raw reply: its events are checked here.
            raw = call_with_retries(client, lambda c: c.chat.completions.with_raw_response.create(**options))
            try:
                check_reply(raw.http_response, EVENT_STREAM)
            except UpstreamMalformed:
                raw.http_response.close()
                raise
        except (openai.BadRequestError, openai.NotFoundError) as e:
            if request.model_requested:  # the caller named the model: the upstream's refusal is theirs to fix
                raise InvalidInput(f"the upstream refused model {model!r} ({e.status_code}): "
                                   f"{translate_openai_error(e)}", param="model") from e
            raise translate_openai_error(e) from e
        except Exception as e:  # the SDK's errors, after its retries
            raise translate_openai_error(e) from e
        return _relay(raw.http_response, hits, model, messages)


def _relay(response: HTTPResponse, hits: list[Hit], model: str,
           messages: list[dict[str, str]]) -> Iterator[AnswerEvent]:
    """The model's reply as events, markers checked; a failure mid-stream is one `AnswerFailed`,
    and so is a stream that ends before the model finished (no chunk, no `finish_reason`, no
    `[DONE]`): a cut-off or empty reply is never passed off as a complete answer."""
    from rag.openai_client import translate_openai_error

    filt = CitationFilter(len(hits))
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
    yield AnswerDone(answered_by, usage)


__all__ = ["ChatAnswerer"]
