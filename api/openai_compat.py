"""OpenAI-compatible endpoints, so existing OpenAI clients work by changing `base_url`.

`/v1/chat/completions` answers from a collection when the body names one (the SDK's
`extra_body={"collection": ...}`), adding a top-level `citations` list (streamed: on the last
chunk); without a collection it goes to the upstream chat model when a key is set.
"""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.openapi.spec import OpenAPIMediaType, RequestBody
from litestar.params import FromPath, JSONBody
from litestar.response import Stream
from litestar.response.base import ASGIResponse
from msgspec import UNSET, UnsetType

from api.errors import path_param
from api.openapi import EVENT_STREAM, UPSTREAM_ERRORS, Event, EventStream, InlineSchema, documented, json_schema
from api.pools import WorkPools
from api.responses import (
    AnswerOut,
    AskDelta,
    AskDone,
    AskError,
    ChatChoice,
    ChatCompletion,
    ChatCompletionChunk,
    ChatMessage,
    ChatStreamError,
    ChatStreamErrorDetail,
    ChunkChoice,
    ChunkDelta,
    CitationOut,
    Embedding,
    EmbeddingList,
    EmbeddingUsage,
    Model,
    ModelList,
    Usage,
    event_payload,
)
from rag.answer import EXTRACTIVE, AnswerEvent
from rag.embeddings.local import MODEL_ID as LOCAL_MODEL
from rag.errors import InvalidInput, LimitExceeded, ModelNotFound
from rag.service import Service

CHAT_STREAM = EventStream(
    description="With stream=true: server-sent events without names, each `data` one chat completion chunk "
                "(the last with `citations` and `usage`), then `[DONE]`. When the upstream fails after the "
                "stream began, an error chunk takes the place of the rest.",
    events=(
        Event(None, ChatCompletionChunk, "A chunk of the answer; the last has finish_reason `stop`."),
        Event(None, ChatStreamError, "The upstream failed after the stream began."),
        Event(None, "[DONE]", "The end of the stream."),
    ),
)


class CollectionChat(msgspec.Struct, kw_only=True):
    """The fields of a chat completion answered from a collection (other OpenAI fields ignored)."""

    collection: str
    messages: list[dict[str, Any]]
    model: str | None = None
    k: Annotated[int, msgspec.Meta(ge=1, le=100)] | None = None
    """Passages to answer from; None: 5 for a chat model, 8 for the offline answerer."""
    mode: str = "hybrid"
    filter: dict[str, Any] | None = None
    temperature: Annotated[float, msgspec.Meta(ge=0, le=2)] | None = None
    max_tokens: Annotated[int, msgspec.Meta(ge=1)] | None = None
    max_completion_tokens: Annotated[int, msgspec.Meta(ge=1)] | None = None
    stream: bool = False


def _chat_body() -> RequestBody:
    schema = json_schema(CollectionChat)
    # Without `collection` the body is OpenAI's own, relayed to the upstream as it is.
    schema["required"] = [f for f in schema.get("required", []) if f != "collection"]
    schema["description"] = ("OpenAI's chat completion body. With `collection`, these fields are read (others "
                             "are ignored); without it, the body goes to the upstream unchanged.")
    return RequestBody(required=True, content={"application/json": OpenAPIMediaType(schema=InlineSchema(value=schema))})


class _Relayed(Response):
    """An ASGI response built already (the passthrough's), handed to Litestar as it is.

    A handler annotated `Any` has its non-`Response` results serialised as JSON, so the
    passthrough's `ASGIStreamingResponse` must travel inside a `Response`.
    """

    def __init__(self, asgi_response: ASGIResponse):
        super().__init__(content=None)
        self.asgi_response = asgi_response

    def to_asgi_response(self, *args: Any, **kwargs: Any) -> ASGIResponse:
        return self.asgi_response


def _model_ids(service: Service) -> list[str]:
    ids = [LOCAL_MODEL, EXTRACTIVE]
    if service.settings.openai_enabled:
        ids.append(service.settings.chat_model)
    return ids


def _decode(body: bytes) -> dict[str, Any]:
    try:
        data = msgspec.json.decode(body)
    except msgspec.DecodeError as e:
        raise InvalidInput(f"the body is not valid JSON: {e}", param="body") from None
    if not isinstance(data, dict):
        raise InvalidInput("the body must be a JSON object", param="body")
    return data


class OpenAIController(Controller):
    path = "/v1"
    tags = ["openai-compatible"]

    @get("/models", operation_id="listModels", summary="Models this service answers with", **documented())
    async def models(self, service: NamedDependency[Service]) -> ModelList:
        return ModelList(data=[Model(id=m, created=0, owned_by="rag-service") for m in _model_ids(service)])

    # {model_id:path}: a model id may hold a slash (`org/model`); the path parameter keeps its leading one.
    @get("/models/{model_id:path}", operation_id="retrieveModel", summary="One model this service answers with",
         **documented(404))
    async def model(self, service: NamedDependency[Service], model_id: FromPath[str]) -> Model:
        wanted = model_id.lstrip("/")
        if wanted not in _model_ids(service):
            raise ModelNotFound(f"model {wanted!r} is not served here; GET /v1/models lists those that are",
                                param="model")
        return Model(id=wanted, created=0, owned_by="rag-service")

    @post("/embeddings", operation_id="createEmbeddings", summary="Embed texts (OpenAI wire format)",
          status_code=200, **documented(400, 404, 413, 503))
    async def embeddings(self, service: NamedDependency[Service], pools: NamedDependency[WorkPools],
                         data: JSONBody[dict[str, Any]]) -> EmbeddingList:
        model = data.get("model")
        if model != LOCAL_MODEL:
            raise ModelNotFound(f"model {model!r} is not served here; use {LOCAL_MODEL!r}", param="model")
        inputs = data.get("input")
        if isinstance(inputs, str):
            inputs = [inputs]
        if not isinstance(inputs, list) or not inputs or not all(isinstance(t, str) for t in inputs):
            raise InvalidInput("input must be a string or a non-empty list of strings (token arrays are not supported)",
                               param="input")
        if data.get("dimensions") is not None:
            raise InvalidInput(f"{LOCAL_MODEL} has a fixed size of 384 dimensions; omit dimensions", param="dimensions")
        fmt = data.get("encoding_format") or "float"
        if fmt not in ("float", "base64"):
            raise InvalidInput("encoding_format must be float or base64", param="encoding_format")
        embedded = await pools.search.run(lambda: service.embed(inputs))
        tokens = embedded.tokens
        rows = []
        for i, v in enumerate(embedded.vectors):
            # base64 is the float32 bytes, little-endian, as OpenAI sends them (the SDK's default).
            value = base64.b64encode(v.astype("<f4").tobytes()).decode() if fmt == "base64" else v.tolist()
            rows.append(Embedding(index=i, embedding=value))
        return EmbeddingList(data=rows, model=LOCAL_MODEL,
                             usage=EmbeddingUsage(prompt_tokens=tokens, total_tokens=tokens))

    # Annotated as a Response so the stream keeps its own media type: Litestar gives any other
    # return annotation the route's (JSON), which would override the stream's text/event-stream.
    @post("/chat/completions", operation_id="createChatCompletion", status_code=200,
          summary="Chat completions; with `collection` in the body, answered from it with citations",
          description="With `collection` in the body (the SDK's `extra_body`), answered from that collection: "
                      "a chat completion with `citations`, or with stream=true its chunks as server-sent "
                      "events, the last with `citations` and `usage`, then `[DONE]`. The request body is "
                      "OpenAI's, plus `collection`, `k`, `mode` and `filter`. Without `collection`, the "
                      "request goes to the OpenAI upstream and its answer (status, body, stream) is relayed "
                      "unchanged, in OpenAI's own shapes.",
          **documented(400, 404, 409, 413, *UPSTREAM_ERRORS, stream=CHAT_STREAM, request_body=_chat_body()))
    async def chat_completions(self, request: Request, service: NamedDependency[Service],
                               pools: NamedDependency[WorkPools]) -> Response[ChatCompletion]:
        body = await request.body()
        data = _decode(body)
        messages = data.get("messages")
        if isinstance(messages, list) and len(messages) > service.settings.max_messages:
            raise LimitExceeded(f"messages has {len(messages):,} messages; the limit is "
                                f"{service.settings.max_messages:,} per conversation (RAG_MAX_MESSAGES)",
                                param="messages")
        collection = data.get("collection")
        if collection is None:
            if not service.settings.openai_enabled:
                raise InvalidInput(
                    "without a \"collection\" in the body this needs an upstream chat model, and "
                    "OPENAI_API_KEY is not set on the server", param="collection")
            from api.passthrough import forward

            return _Relayed(await forward(request))  # the body read above is replayed from Litestar's cache
        try:
            body_in = msgspec.convert(data, CollectionChat)
        except msgspec.ValidationError as e:
            raise InvalidInput(f"invalid body: {e}", param=path_param(e)) from None
        model = service.resolve_model(body_in.model or None)
        # The whole conversation: its last user message is answered, read with the turns before it.
        options: dict[str, Any] = {
            "messages": body_in.messages, "k": body_in.k, "mode": body_in.mode, "filter": body_in.filter,
            "model": model, "temperature": body_in.temperature,
            "max_tokens": body_in.max_completion_tokens or body_in.max_tokens}
        collection = body_in.collection
        ident = f"chatcmpl-{uuid.uuid4().hex}"
        created = int(time.time())
        if not body_in.stream:
            answer = await pools.answers.run(lambda: service.answer(collection, **options))
            out = AnswerOut.from_answer(answer)
            return Response(ChatCompletion(
                id=ident, created=created, model=out.model,
                choices=[ChatChoice(index=0, message=ChatMessage(content=out.answer))],
                usage=out.usage, citations=out.citations))
        events = await pools.answers.run(lambda: service.stream(collection, **options))
        chunks = _chunks(pools.answers.iterate(events), ident, created, model)
        # The annotation documents the JSON answer; CHAT_STREAM documents this one.
        return Stream(chunks, media_type=EVENT_STREAM,  # type: ignore[return-value]
                      headers={"Cache-Control": "no-cache"})


async def _chunks(events: AsyncIterator[AnswerEvent], ident: str, created: int, model: str) -> AsyncIterator[bytes]:
    """Chat completion chunks as OpenAI streams them, ending with citations and [DONE]."""

    def sse(payload: ChatCompletionChunk | ChatStreamError) -> bytes:
        return b"data: " + msgspec.json.encode(payload) + b"\n\n"

    def chunk(delta: ChunkDelta, *, finish_reason: Literal["stop"] | None = None,
              citations: list[CitationOut] | UnsetType = UNSET, usage: Usage | UnsetType = UNSET) -> bytes:
        return sse(ChatCompletionChunk(id=ident, created=created, model=model,
                                       choices=[ChunkChoice(index=0, delta=delta, finish_reason=finish_reason)],
                                       citations=citations, usage=usage))

    first = True
    citations: list[CitationOut] = []
    async for event in events:
        payload = event_payload(event)
        if isinstance(payload, AskDelta):
            yield chunk(ChunkDelta(content=payload.text, role="assistant" if first else UNSET))
            first = False
        elif isinstance(payload, list):
            citations = payload
        elif isinstance(payload, AskDone):
            yield chunk(ChunkDelta(), finish_reason="stop", citations=citations, usage=payload.usage)
        elif isinstance(payload, AskError):
            yield sse(ChatStreamError(error=ChatStreamErrorDetail(message=payload.message, code=payload.status)))
    yield b"data: [DONE]\n\n"

