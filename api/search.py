"""Search, ask (plain or streamed) and text similarity."""

from __future__ import annotations

import json
from collections.abc import Iterator

from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from litestar import Controller, Response, post
from litestar.response import ServerSentEvent
from litestar.response.sse import ServerSentEventMessage

from api.schemas import AskIn, SearchIn, SimilarityIn
from rag.answer import AnswerEvent
from rag.errors import InvalidInput
from rag.service import Service


class SearchController(Controller):
    path = "/collections/{name:str}"
    tags = ["search"]

    @post("/search", operation_id="search", summary="Search a collection", sync_to_thread=True, status_code=200)
    def search(self, service: NamedDependency[Service], name: FromPath[str], data: JSONBody[SearchIn]) -> dict:
        hits = service.search(name, data.query, k=data.k, mode=data.mode, filter=data.filter,
                              min_score=data.min_score)
        return {"hits": [h.to_dict() for h in hits]}

    @post("/ask", operation_id="ask", summary="Answer a question with citations", sync_to_thread=True,
          status_code=200,
          description="With stream=true: Server-Sent Events `delta` {text}, one `citations` [...], then "
                      "`done` {model, usage}, or `error` {message, status}.")
    def ask(self, service: NamedDependency[Service], name: FromPath[str], data: JSONBody[AskIn]) -> Response:
        options = {"k": data.k, "mode": data.mode, "filter": data.filter, "model": data.model,
                   "temperature": data.temperature, "max_tokens": data.max_tokens}
        if not data.stream:
            return Response(service.answer(name, data.question, **options).to_dict())
        # Input and upstream errors raise here, before the stream opens, and get their status.
        events = service.stream(name, data.question, **options)
        return ServerSentEvent(_sse(events))


def _sse(events: Iterator[AnswerEvent]) -> Iterator[ServerSentEventMessage]:
    for event in events:
        yield ServerSentEventMessage(event=event.type, data=json.dumps(event.data, ensure_ascii=False))


class SimilarityController(Controller):
    path = "/similarity"
    tags = ["similarity"]

    @post(operation_id="similarity", summary="Cosine similarity of texts (local embedder)", sync_to_thread=True,
          status_code=200)
    def similarity(self, service: NamedDependency[Service], data: JSONBody[SimilarityIn]) -> dict:
        if data.pairs is not None:
            if data.a is not None or data.b is not None:
                raise InvalidInput("give either a and b, or pairs", param="pairs")
            pairs = data.pairs
        elif data.a is not None and data.b is not None:
            pairs = [(data.a, data.b)]
        else:
            raise InvalidInput("give a and b, or pairs", param="b" if data.a is not None else "a")
        if not pairs:
            return {"scores": []}
        scores = [round(s, 6) for s in service.similarity(pairs)]
        return {"scores": scores} if data.pairs is not None else {"score": scores[0]}
