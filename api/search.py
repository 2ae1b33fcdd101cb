"""Search, ask (plain or streamed) and text similarity."""

from __future__ import annotations

from collections.abc import AsyncIterator

import msgspec
from litestar import Controller, Response, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from litestar.response import ServerSentEvent
from litestar.response.sse import ServerSentEventMessage

from api.openapi import UPSTREAM_ERRORS, Event, EventStream, documented
from api.pools import WorkPools
from api.responses import (
    AnswerOut,
    AskDelta,
    AskDone,
    AskError,
    CitationOut,
    HitOut,
    SearchResults,
    SimilarityScore,
    SimilarityScores,
    event_payload,
)
from api.schemas import AskIn, SearchIn, SimilarityIn
from rag.answer import AnswerEvent
from rag.errors import InvalidInput
from rag.service import Service

ASK_STREAM = EventStream(
    description="With stream=true: server-sent events `delta` ..., one `citations`, then `done`; or, when "
                "the upstream fails after the stream began, a last `error` in place of citations and done.",
    events=(
        Event("delta", AskDelta, "The next piece of the answer."),
        Event("citations", list[CitationOut], "The passages the whole answer cites; sent once, after the text."),
        Event("done", AskDone, "The last event of a complete answer."),
        Event("error", AskError, "The upstream failed after the stream began: the last event."),
    ),
)

# Search and answers embed the query with the collection's embedder: an openai collection asks
# the upstream, and one built with another embedder than the service's is refused (409).
_QUERY_ERRORS = (400, 404, 409, 413, *UPSTREAM_ERRORS)


class SearchController(Controller):
    path = "/collections/{name:str}"
    tags = ["search"]

    @post("/search", operation_id="search", summary="Search a collection", status_code=200,
          **documented(*_QUERY_ERRORS))
    async def search(self, service: NamedDependency[Service], pools: NamedDependency[WorkPools], name: FromPath[str],
                     data: JSONBody[SearchIn]) -> SearchResults:
        hits = await pools.search.run(lambda: service.search(name, data.query, k=data.k, mode=data.mode,
                                                             filter=data.filter, min_score=data.min_score))
        return SearchResults(hits=[HitOut.from_hit(h) for h in hits])

    @post("/ask", operation_id="ask", summary="Answer a question with citations", status_code=200,
          description="With stream=true: Server-Sent Events `delta` {text}, one `citations` [...], then "
                      "`done` {model, usage}, or `error` {message, status}.",
          **documented(*_QUERY_ERRORS, stream=ASK_STREAM))
    async def ask(self, service: NamedDependency[Service], pools: NamedDependency[WorkPools], name: FromPath[str],
                  data: JSONBody[AskIn]) -> Response[AnswerOut]:
        options = {"messages": data.messages, "k": data.k, "mode": data.mode, "filter": data.filter,
                   "model": data.model, "temperature": data.temperature, "max_tokens": data.max_tokens,
                   "min_score": data.min_score}
        if not data.stream:
            answer = await pools.answers.run(lambda: service.answer(name, data.question, **options))
            return Response(AnswerOut.from_answer(answer))
        # Input and upstream errors raise here, before the stream opens, and get their status.
        events = await pools.answers.run(lambda: service.stream(name, data.question, **options))
        # The annotation documents the JSON answer; ASK_STREAM documents this one.
        return ServerSentEvent(_sse(pools.answers.iterate(events)))  # type: ignore[return-value]


async def _sse(events: AsyncIterator[AnswerEvent]) -> AsyncIterator[ServerSentEventMessage]:
    async for event in events:
        yield ServerSentEventMessage(event=event.type, data=msgspec.json.encode(event_payload(event)).decode())


class SimilarityController(Controller):
    path = "/similarity"
    tags = ["similarity"]

    @post(operation_id="similarity", summary="Cosine similarity of texts (local embedder)",
          status_code=200, description="`a` and `b` answer {score}; `pairs` answers {scores}.",
          **documented(400, 413, 503))
    async def similarity(self, service: NamedDependency[Service], pools: NamedDependency[WorkPools],
                         data: JSONBody[SimilarityIn]) -> SimilarityScore | SimilarityScores:
        if data.pairs is not None:
            if data.a is not None or data.b is not None:
                raise InvalidInput("give either a and b, or pairs", param="pairs")
            pairs = data.pairs
        elif data.a is not None and data.b is not None:
            pairs = [(data.a, data.b)]
        else:
            raise InvalidInput("give a and b, or pairs", param="b" if data.a is not None else "a")
        if not pairs:
            return SimilarityScores(scores=[])
        scores = [round(s, 6) for s in await pools.search.run(lambda: service.similarity(pairs))]
        return SimilarityScores(scores=scores) if data.pairs is not None else SimilarityScore(score=scores[0])
