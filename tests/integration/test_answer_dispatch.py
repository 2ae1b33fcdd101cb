"""How `Asker` picks an answerer by model name, and when it asks for an OpenAI client.

Real store, real local embedder and, for chat answers, the OpenAI test server on 127.0.0.1.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import openai
import pytest

from rag.answer import (
    EXTRACTIVE,
    AnswerCitations,
    AnswerDelta,
    AnswerDone,
    AnswerEvent,
    AnswerRequest,
    Asker,
)
from rag.config import Settings
from rag.errors import InvalidInput, MissingCredentials
from rag.indexes.dense_faiss import IndexCache
from rag.indexes.lexical_tantivy import TantivyIndex
from rag.openai_client import make_client
from rag.retrieval import Retriever
from rag.service import Service
from rag.store import Store

QUESTION = "How many panels are on the school roof?"


@dataclass
class Parts:
    """The pieces an `Asker` is built from, as the service builds them."""

    retriever: Retriever
    store: Store
    settings: Settings


def parts_of(service: Service) -> Parts:
    store = Store(service.settings.database_path)
    return Parts(Retriever(store, IndexCache(store, service.settings.index_dir),
                           TantivyIndex(store, service.settings.index_dir / "tantivy"),
                           service.embedder_for), store,
                 service.settings)


@pytest.fixture
def service(home: Path) -> Iterator[Parts]:
    service = Service(Settings(home=home))
    parts = parts_of(service)
    yield parts
    parts.store.close()
    service.close()


class Echo:
    """An answerer that repeats the question and cites its first passage, keeping what it was asked."""

    def __init__(self) -> None:
        self.requests: list[AnswerRequest] = []

    def stream(self, request: AnswerRequest) -> Iterator[AnswerEvent]:
        self.requests.append(request)
        return iter([AnswerDelta(f"{request.question} [1]"), AnswerCitations([]),
                     AnswerDone(request.model, {"prompt_tokens": 7})])


def test_a_registered_answerer_answers_for_its_model_name(service: Parts) -> None:
    echo = Echo()
    asker = Asker(service.retriever, service.settings, answerers={"echo": echo})
    answer = asker.answer("wren", QUESTION, k=3, model="echo")

    assert (answer.answer, answer.model) == (f"{QUESTION} [1]", "echo")
    assert answer.usage["prompt_tokens"] == 7 and not answer.usage["cached"]
    [request] = echo.requests
    assert request.model == "echo" and request.model_requested and request.collection.name == "wren"
    assert [h.chunk_id for h in request.hits] == [h.chunk_id for h in asker.retrieve("wren", QUESTION, k=3)]
    # Registering one does not take the offline answerer away, and without a key every other
    # name is refused with the names that do answer.
    assert asker.answer("wren", QUESTION, model=EXTRACTIVE).model == EXTRACTIVE
    with pytest.raises(InvalidInput, match=r"without it only 'extractive', 'echo' answers"):
        asker.answer("wren", QUESTION, model="gpt-5.4-mini")


def test_the_openai_client_is_asked_for_once_and_only_for_chat_answers(home: Path, openai_server) -> None:
    settings = Settings(home=home, openai_api_key="test-key", openai_base_url=openai_server.url)
    made: list[openai.OpenAI] = []

    def client() -> openai.OpenAI:
        made.append(make_client(settings))
        return made[-1]

    service = Service(settings)
    try:
        asker = Asker(parts_of(service).retriever, settings, openai_client=client)
        assert asker.answer("wren", QUESTION, model=EXTRACTIVE).model == EXTRACTIVE
        assert made == []
        openai_server.set_reply("540 panels [1].", "Still 540 [2].")
        first = asker.answer("wren", QUESTION)
        second = asker.answer("wren", QUESTION)
    finally:
        service.close()
    assert len(made) == 1
    # Citations are numbered in the order the answer cites them: the model's [2] is the reader's [1].
    assert (first.answer, second.answer) == ("540 panels [1].", "Still 540 [1].")
    assert [(c.index, c.passage) for c in second.citations] == [(1, 2)]
    assert len(openai_server.requests_to("/v1/chat/completions")) == 2


def test_a_missing_key_fails_only_when_a_chat_answer_is_asked_for(service: Parts) -> None:
    asker = Asker(service.retriever, service.settings)  # no key: making the asker must not fail
    hits = asker.retrieve("wren", QUESTION)
    assert asker.answer("wren", QUESTION).model == EXTRACTIVE
    request = AnswerRequest(question=QUESTION, collection=service.store.get_collection("wren"), hits=hits,
                            model="gpt-5.4-mini")
    with pytest.raises(MissingCredentials, match="OPENAI_API_KEY is not set"):
        asker.chat.stream(request)


def test_events_narrow_by_type_and_carry_their_wire_payload(service: Parts) -> None:
    events = list(Asker(service.retriever, service.settings).stream("wren", QUESTION))
    kinds = [e.type for e in events]
    assert kinds[-2:] == ["citations", "done"] and set(kinds[:-2]) == {"delta"}
    delta, citations, done = events[0], events[-2], events[-1]
    assert isinstance(delta, AnswerDelta) and delta.data == {"text": delta.text}
    assert isinstance(citations, AnswerCitations) and citations.citations
    c = citations.citations[0]
    assert citations.data[0] == {
        "index": c.index, "document_id": c.document_id, "chunk_id": c.chunk_id, "source": c.source,
        "title": c.title, "page": c.page, "start_char": c.start_char, "end_char": c.end_char,
        "quote": c.quote, "score": c.score, "passage": c.passage}
    assert isinstance(done, AnswerDone) and done.data == {"model": EXTRACTIVE, "usage": done.usage}
