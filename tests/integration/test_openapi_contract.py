"""The OpenAPI document is the contract: real answers of every operation validate against it.

Every operation in `/schema/openapi.json`, except the passthrough routes (they relay the upstream's
own answers and are documented as opaque), is called through Litestar's TestClient on the sample
corpus, in success and error cases, and each answer is checked against what the document declares
for that operation: the status must be declared, the content type must be one declared for it, a
JSON body must validate against its schema (OpenAPI 3.1 dialect, `$ref`s resolved in the document),
and each server-sent event must match one of the events the stream documents (`x-itemSchema`, see
`api/openapi.py`). Two apps answer: one offline (no OpenAI key), and one with a key, an OpenAI test
server as upstream and bearer auth, for the chat model's answers, upstream failures and 401s.

A separate walk checks that the document describes every response: no schema of a non-passthrough
route is a bare `object`. An object schema must list `properties`, or be a map, which declares
`additionalProperties` (a document's free-form `metadata`, a usage's token details).
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from litestar.testing import TestClient
from openapi_schema_validator import OAS31Validator, oas31_format_checker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from support.sse import sse_messages

from api.app import create_app
from api.passthrough import PASSTHROUGH_ROUTES
from rag.config import Settings

DOC_URI = "urn:rag-service:openapi"
EVENT_STREAM = "text/event-stream"
API_KEY = "contract-key"
CHAT_MODEL = "gpt-5.4-mini"
QUESTION = "How many panels are on the school roof?"
METHODS = ("get", "put", "post", "delete", "patch", "options", "head", "trace")

PASSTHROUGH = frozenset(
    (method, "/v1" + re.sub(r"\{(\w+):\w+\}", r"{\1}", path))
    for path, methods in PASSTHROUGH_ROUTES for method in methods
)
"""(method, path) of the passthrough operations, by name: the only ones this test leaves out."""

NO_ERROR_ANSWER = frozenset({"health", "healthLive"})
"""Operations that declare no error status, so have no error case (asserted below)."""


# -- the document ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Operation:
    operation_id: str
    method: str
    path: str
    spec: dict[str, Any]

    @property
    def pointer(self) -> str:
        return "/paths/" + _escape(self.path) + "/" + self.method.lower()

    def declared(self) -> set[int]:
        return {int(s) for s in self.spec["responses"] if s.isdigit()}


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def operations(doc: dict[str, Any]) -> dict[str, Operation]:
    """Every operation of the document but the passthrough ones, by operationId."""
    found = {}
    for path, item in doc["paths"].items():
        for method in METHODS:
            if method in item and (method.upper(), path) not in PASSTHROUGH:
                op = item[method]
                found[op["operationId"]] = Operation(op["operationId"], method.upper(), path, op)
    return found


def closed(node: Any) -> Any:
    """The document with `additionalProperties: false` on every object schema that lists its
    properties and says nothing of others: the service must document every key it sends (clients
    may still ignore keys they do not know)."""
    if isinstance(node, list):
        return [closed(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: closed(v) for k, v in node.items()}
    if isinstance(node.get("properties"), dict) and "additionalProperties" not in node:
        out["additionalProperties"] = False
    return out


class Contract:
    """Validates bodies against schemas found by JSON pointer in the document (closed, see `closed`)."""

    def __init__(self, doc: dict[str, Any]):
        self.doc = doc
        resource = Resource.from_contents(closed(doc), default_specification=DRAFT202012)
        self.registry = Registry().with_resource(DOC_URI, resource)

    def at(self, pointer: str) -> Any:
        node: Any = self.doc
        for part in pointer.strip("/").split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            node = node[int(part)] if isinstance(node, list) else node[part]
        return node

    def errors(self, instance: Any, pointer: str) -> list[str]:
        validator = OAS31Validator({"$ref": f"{DOC_URI}#{pointer}"}, registry=self.registry,
                                   format_checker=oas31_format_checker)
        return [f"{'/'.join(map(str, e.absolute_path)) or '(body)'}: {e.message}"
                for e in validator.iter_errors(instance)]


# -- what a response holds ------------------------------------------------------------------------

def media_type(response) -> str:
    return response.headers.get("content-type", "").split(";")[0].strip()


def event_problems(contract: Contract, pointer: str, event: dict[str, str]) -> list[str]:
    """[] when the event validates against the item schema at `pointer` and its data against the
    `contentSchema` (or `const`) of a documented event with its name."""
    problems = contract.errors(event, pointer)
    if problems:
        return problems
    for i, branch in enumerate(contract.at(pointer)["anyOf"]):
        props = branch["properties"]
        if event.get("event") != props.get("event", {}).get("const"):
            continue
        if "const" in props["data"]:
            if event["data"] == props["data"]["const"]:
                return []
            continue
        try:
            data = json.loads(event["data"])
        except json.JSONDecodeError:
            continue
        if not contract.errors(data, f"{pointer}/anyOf/{i}/properties/data/contentSchema"):
            return []
    return [f"event {event.get('event')!r} with data {event['data'][:200]!r} matches no documented event"]


def response_problems(contract: Contract, op: Operation, response) -> list[str]:
    """What in this answer the document does not declare."""
    status = str(response.status_code)
    declared = op.spec["responses"]
    if status not in declared:
        return [f"status {status} is not declared (declared: {sorted(declared)})"]
    content = declared[status].get("content") or {}
    if not content:
        return [] if response.content == b"" else [f"status {status} declares no body, got {response.content[:80]!r}"]
    kind = media_type(response)
    if kind not in content:
        return [f"content type {kind!r} is not declared for {status} (declared: {sorted(content)})"]
    where = f"{op.pointer}/responses/{status}/content/{_escape(kind)}"
    if kind == EVENT_STREAM:
        events = list(sse_messages(response.text))
        if not events:
            return ["an event stream with no events"]
        return [p for e in events for p in event_problems(contract, f"{where}/x-itemSchema", e)]
    try:
        body = response.json()
    except ValueError:
        return [f"a {kind} body that is not JSON: {response.text[:80]!r}"]
    return contract.errors(body, f"{where}/schema")


# -- the cases ------------------------------------------------------------------------------------

@dataclass
class Case:
    """One request to one operation, and the status it must get."""

    operation: str
    status: int
    name: str = ""
    path: dict[str, Any] = field(default_factory=dict)
    query: dict[str, Any] = field(default_factory=dict)
    json: Any = None
    files: list[tuple[str, tuple[str, bytes]]] | None = None
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    before: Callable[[], Any] | None = None
    """Runs first (an upstream fault); what it returns is called after the request, if callable."""

    def label(self) -> str:
        return f"{self.operation} [{self.status}{', ' + self.name if self.name else ''}]"


@dataclass
class Exchange:
    case: Case
    operation: Operation
    response: Any


def send(client: TestClient, op: Operation, case: Case, auth: str | None = None) -> Exchange:
    headers = dict(case.headers)
    if auth is not None:
        headers.setdefault("authorization", f"Bearer {auth}")
    after = case.before() if case.before else None
    url = op.path.format(**case.path)
    kwargs: dict[str, Any] = {"params": case.query, "headers": headers}
    if case.json is not None:
        kwargs["json"] = case.json
    if case.files is not None:
        kwargs["files"] = case.files
    if case.content is not None:
        kwargs["content"] = case.content
    response = client.request(op.method, url, **kwargs)
    if callable(after):
        after()
    assert response.status_code == case.status, (case.label(), response.status_code, response.text[:500])
    return Exchange(case, op, response)


def offline_cases(client: TestClient) -> Iterator[Case]:
    """Without an OpenAI key; the app refuses bodies over 1 MB. Lazy: later cases use earlier answers."""
    wren = {"name": "wren"}
    yield Case("health", 200)
    yield Case("healthLive", 200)
    yield Case("healthReady", 200)
    yield Case("healthReady", 503, "loading", before=lambda: _loading(client))

    yield Case("listCollections", 200)
    yield Case("listCollections", 200, "a page", query={"limit": 1, "after": "a"})
    yield Case("listCollections", 400, "limit 0", query={"limit": 0})
    yield Case("createCollection", 201, json={"name": "contract", "chunk_size": 128})
    yield Case("createCollection", 409, "exists", json={"name": "contract"})
    yield Case("createCollection", 400, "chunk_size", json={"name": "x", "chunk_size": 4})
    yield Case("createCollection", 503, "openai embedder without a key", json={"name": "x", "embedder": "openai"})
    yield Case("getCollection", 200, path=wren)
    yield Case("getCollection", 404, path={"name": "nope"})
    yield Case("deleteCollection", 204, path={"name": "contract"})
    yield Case("deleteCollection", 404, path={"name": "contract"})

    note = b"# Hives\n\nThe co-operative keeps beehives beside the barn array.\n"
    doc = {"text": "Volunteers clean the panels each April.", "title": "Cleaning", "source": "cleaning",
           "metadata": {"category": "maintenance"}}
    yield Case("addDocuments", 202, "json", path=wren, json={"documents": [doc]})
    yield Case("addDocuments", 202, "multipart", path=wren, files=[("files", ("hives.md", note))])
    yield Case("addDocuments", 201, "wait", path=wren, query={"wait": "true"},
               json={"documents": [{**doc, "source": "cleaning-2", "text": doc["text"] + " And in May."}]})
    yield Case("addDocuments", 400, "unreadable file", path=wren, files=[("files", ("empty.txt", b""))])
    yield Case("addDocuments", 400, "invalid document", path=wren, json={"documents": [{"text": ""}]})
    yield Case("addDocuments", 404, path={"name": "nope"}, json={"documents": [doc]})
    yield Case("addDocuments", 413, "over RAG_MAX_UPLOAD_MB", path=wren,
               files=[("files", ("big.txt", b"x" * (1024 * 1024 + 1)))])
    yield Case("addDocuments", 415, "unsupported file", path=wren, files=[("files", ("photo.png", b"\x89PNG"))])
    yield Case("addDocuments", 415, "content type", path=wren, content=b"x", headers={"content-type": "text/plain"})

    yield Case("listDocuments", 200, path=wren)
    yield Case("listDocuments", 400, "after too large", path=wren, query={"after": 2**63})
    yield Case("listDocuments", 404, path={"name": "nope"})
    listed = client.get("/collections/wren/documents").json()["data"]
    pdf = next(d["id"] for d in listed if d["source"].endswith(".pdf"))
    cleaning = next(d["id"] for d in listed if d["source"] == "cleaning")
    yield Case("getDocument", 200, "a PDF", path={**wren, "document_id": pdf})
    yield Case("getDocument", 400, "id too large", path={**wren, "document_id": 2**63})
    yield Case("getDocument", 404, path={**wren, "document_id": 10**9})
    yield Case("deleteDocument", 204, path={**wren, "document_id": cleaning})
    yield Case("deleteDocument", 404, path={**wren, "document_id": cleaning})
    yield Case("listDocuments", 200, "by folder", path=wren, query={"source_prefix": "clean"})
    yield Case("listDocuments", 400, "unknown parameter", path=wren, query={"sorce": "cleaning"})
    yield Case("deleteDocuments", 200, "by source", path=wren, query={"source": "cleaning-2"})
    yield Case("deleteDocuments", 400, "neither source nor prefix", path=wren)
    yield Case("deleteDocuments", 404, path={"name": "nope"}, query={"source_prefix": "a/"})

    for mode in ("dense", "lexical", "hybrid"):
        yield Case("search", 200, mode, path=wren, json={"query": "generation by month in 2024", "mode": mode, "k": 20})
    yield Case("search", 200, "filtered", path=wren,
               json={"query": "panels", "filter": {"category": "maintenance"}, "min_score": 0.0})
    yield Case("search", 400, "mode", path=wren, json={"query": "panels", "mode": "fuzzy"})
    yield Case("search", 404, path={"name": "nope"}, json={"query": "panels"})

    yield Case("ask", 200, path=wren, json={"question": QUESTION})
    yield Case("ask", 200, "stream", path=wren, json={"question": QUESTION, "stream": True})
    yield Case("ask", 200, "no answer", path=wren, json={"question": "Who painted the Mona Lisa?"})
    yield Case("ask", 400, "chat model without a key", path=wren, json={"question": QUESTION, "model": CHAT_MODEL})
    yield Case("ask", 404, path={"name": "nope"}, json={"question": QUESTION})

    yield Case("similarity", 200, "a, b", json={"a": "a cat", "b": "a feline"})
    yield Case("similarity", 200, "pairs", json={"pairs": [["a cat", "a feline"], ["a cat", "Python"]]})
    yield Case("similarity", 400, json={"a": "only a"})

    yield Case("listModels", 200)
    yield Case("retrieveModel", 200, path={"model_id": "extractive"})
    yield Case("retrieveModel", 404, path={"model_id": "gpt-x"})
    embed = {"model": "all-MiniLM-L6-v2", "input": ["hello world", "cats"]}
    yield Case("createEmbeddings", 200, "float", json=embed)
    yield Case("createEmbeddings", 200, "base64", json={**embed, "encoding_format": "base64"})
    yield Case("createEmbeddings", 400, "input", json={**embed, "input": []})
    yield Case("createEmbeddings", 404, "model", json={**embed, "model": "text-embedding-3-small"})

    chat = {"model": "extractive", "collection": "wren", "messages": [{"role": "user", "content": QUESTION}]}
    yield Case("createChatCompletion", 200, json=chat)
    yield Case("createChatCompletion", 200, "stream", json={**chat, "stream": True})
    yield Case("createChatCompletion", 400, "no collection, no key", json={**chat, "collection": None})
    yield Case("createChatCompletion", 404, json={**chat, "collection": "nope"})


def _loading(client: TestClient) -> Callable[[], None]:
    """Make the app look as if it were still loading; returns what undoes it."""

    class Loading:
        def loading(self) -> list[str]:
            return ["the local embedding model"]

    state = client.app.state
    state.loader = Loading()
    return lambda: setattr(state, "loader", None)


def upstream_cases(server) -> Iterator[Case]:
    """With a key, the OpenAI test server as upstream, and bearer auth on."""
    wren = {"name": "wren"}
    chat = {"collection": "wren", "messages": [{"role": "user", "content": QUESTION}]}

    def held_stream() -> Callable[[], None]:
        # The upstream stops after its first event; the read times out (RAG_OPENAI_TIMEOUT_S)
        # after the stream began, so the failure arrives as the stream's last event.
        return server.hold_stream(after=1).set

    yield Case("listModels", 401, "no key", headers={"authorization": ""})
    yield Case("listModels", 401, "wrong key", headers={"authorization": "Bearer wrong"})
    yield Case("health", 200, "public")
    yield Case("ask", 200, "chat model", path=wren, json={"question": QUESTION})
    yield Case("ask", 200, "chat model, stream", path=wren, json={"question": QUESTION, "stream": True})
    yield Case("ask", 200, "stream broken off", path=wren, json={"question": QUESTION, "stream": True},
               before=held_stream)
    yield Case("ask", 429, path=wren, json={"question": QUESTION}, before=lambda: server.fail_next(429, times=3))
    yield Case("ask", 502, path=wren, json={"question": QUESTION}, before=lambda: server.fail_next(500, times=3))
    yield Case("createChatCompletion", 200, "chat model", json=chat)
    yield Case("createChatCompletion", 200, "chat model, stream", json={**chat, "stream": True})
    yield Case("createChatCompletion", 200, "stream broken off", json={**chat, "stream": True}, before=held_stream)
    yield Case("createChatCompletion", 429, json=chat, before=lambda: server.fail_next(429, times=3))
    yield Case("search", 401, "no key", path=wren, json={"query": "panels"}, headers={"authorization": ""})

    # A collection embedded upstream: its uploads and queries fail as the upstream does.
    remote = {"name": "remote"}
    doc = {"text": "The barn array has 96 panels.", "source": "barn"}
    yield Case("createCollection", 201, "openai embedder", json={**remote, "embedder": "openai"})
    yield Case("addDocuments", 201, "wait, embedded upstream", path=remote, query={"wait": "true"},
               json={"documents": [doc]})
    yield Case("addDocuments", 429, "wait, upstream rate-limited", path=remote, query={"wait": "true"},
               json={"documents": [{**doc, "source": "barn-2"}]}, before=lambda: server.fail_next(429, times=3))
    yield Case("search", 200, "embedded upstream", path=remote, json={"query": "barn panels"})
    yield Case("search", 502, "upstream failing", path=remote, json={"query": "barn panels"},
               before=lambda: server.fail_next(500, times=3))


# -- running them ---------------------------------------------------------------------------------

_RUN: dict[str, Any] = {}


@pytest.fixture
def run(home, openai_server) -> dict[str, Any]:
    """The document and every exchange, from two apps over a copy of the seeded home; run once per
    module, inside the first test that asks (so the network guard is in force)."""
    if "error" in _RUN:
        raise _RUN["error"]
    if "exchanges" not in _RUN:
        try:
            # Each run gets the home as seeded: the offline cases delete and add documents.
            upstream_home = home.parent / "upstream-home"
            shutil.copytree(home, upstream_home)
            exchanges = []
            offline = create_app(Settings(home=home, max_upload_mb=1), warm_up=False)
            with TestClient(app=offline) as client:
                doc = client.get("/schema/openapi.json").json()
                ops = operations(doc)
                for case in offline_cases(client):
                    exchanges.append(send(client, ops[case.operation], case))
            online = create_app(Settings(home=upstream_home, openai_api_key="test-key",
                                         openai_base_url=openai_server.url, openai_timeout_s=2.0,
                                         api_keys=(API_KEY,)), warm_up=False)
            with TestClient(app=online) as client:
                same = client.get("/schema/openapi.json", headers={"authorization": f"Bearer {API_KEY}"}).json()
                assert same["paths"].keys() == doc["paths"].keys()
                for case in upstream_cases(openai_server):
                    exchanges.append(send(client, ops[case.operation], case, auth=API_KEY))
        except BaseException as e:
            _RUN["error"] = e
            raise
        _RUN.update(doc=doc, ops=ops, exchanges=exchanges)
    return _RUN


# -- the tests ------------------------------------------------------------------------------------

def test_every_operation_is_exercised_in_success_and_error(run):
    ops: dict[str, Operation] = run["ops"]
    statuses: dict[str, set[int]] = {op: set() for op in ops}
    for exchange in run["exchanges"]:
        statuses[exchange.operation.operation_id].add(exchange.response.status_code)
    assert [op for op, seen in statuses.items() if not any(200 <= s < 300 for s in seen)] == []
    without_error = {op for op, seen in statuses.items() if not any(s >= 400 for s in seen)}
    assert without_error == NO_ERROR_ANSWER
    assert all(max(ops[op].declared()) < 400 for op in NO_ERROR_ANSWER)


def test_every_answer_is_declared_and_validates(run):
    contract = Contract(run["doc"])
    problems = {}
    for exchange in run["exchanges"]:
        found = response_problems(contract, exchange.operation, exchange.response)
        if found:
            problems[exchange.case.label()] = found
    assert problems == {}


def test_error_bodies_with_details_are_exercised(run):
    details = {key for x in run["exchanges"] if x.response.status_code >= 400
               for key in x.response.json()["error"]}
    assert {"files", "documents"} <= details  # validated as ErrorDetail documents them


def test_streams_are_server_sent_events(run):
    streamed = [x for x in run["exchanges"] if x.case.json and x.case.json.get("stream")]
    assert {x.operation.operation_id for x in streamed} == {"ask", "createChatCompletion"}
    for exchange in streamed:
        assert media_type(exchange.response) == EVENT_STREAM, exchange.case.label()
    broken = [x for x in streamed if x.case.name == "stream broken off"]
    assert len(broken) == 2
    ask = next(x for x in broken if x.operation.operation_id == "ask")
    assert [e.get("event") for e in sse_messages(ask.response.text)][-1] == "error"
    chat = next(x for x in broken if x.operation.operation_id == "createChatCompletion")
    *_, failed, done = [e["data"] for e in sse_messages(chat.response.text)]
    assert json.loads(failed)["error"]["code"] == 504 and done == "[DONE]"


def test_passthrough_operations_are_the_listed_ones_and_documented_opaque(run):
    doc = run["doc"]
    tagged = {(method.upper(), path) for path, item in doc["paths"].items() for method in METHODS
              if method in item and "passthrough" in item[method].get("tags", ())}
    assert tagged == PASSTHROUGH
    for method, path in PASSTHROUGH:
        responses = doc["paths"][path][method.lower()]["responses"]
        assert "relayed unchanged" in responses["default"]["description"]
        assert not [s for s in responses if s.startswith("2")]


# -- the document describes every response --------------------------------------------------------

def schema_problems(doc: dict[str, Any], schema: Any, where: str, seen: set[str] | None = None,
                    map_value: bool = False) -> list[str]:
    """Bare objects and untyped schemas under `schema`, following `$ref`s (each once)."""
    seen = set() if seen is None else seen
    if not isinstance(schema, dict):
        return [f"{where}: not a schema"]
    if "$ref" in schema:
        ref = schema["$ref"]
        if ref in seen:
            return []
        seen.add(ref)
        target: Any = doc
        for part in ref.removeprefix("#/").split("/"):
            target = target[part]
        return schema_problems(doc, target, ref, seen)
    problems = []
    composed = [s for key in ("anyOf", "oneOf", "allOf") for s in schema.get(key, [])]
    if not schema and not map_value:  # a map's values may be anything (free-form metadata)
        problems.append(f"{where}: untyped")
    if schema.get("type") == "object" or "properties" in schema:
        if not schema.get("properties") and not isinstance(schema.get("additionalProperties"), dict):
            problems.append(f"{where}: an object without properties that is not a map")
    children = [(f"{where}.{name}", s, False) for name, s in (schema.get("properties") or {}).items()]
    children += [(f"{where}[]", schema["items"], False)] if "items" in schema else []
    children += [(f"{where}{{}}", schema["additionalProperties"], True)] \
        if isinstance(schema.get("additionalProperties"), dict) else []
    children += [(f"{where}|{i}", s, False) for i, s in enumerate(composed)]
    if "contentSchema" in schema:
        children.append((f"{where}(content)", schema["contentSchema"], False))
    for child_where, child, is_map_value in children:
        problems += schema_problems(doc, child, child_where, seen, is_map_value)
    return problems


def test_no_response_schema_is_a_bare_object(run):
    doc, problems = run["doc"], []
    for op in run["ops"].values():
        for status, response in op.spec["responses"].items():
            assert status.isdigit(), f"{op.operation_id}: a {status} response outside the passthrough routes"
            for kind, media in (response.get("content") or {}).items():
                where = f"{op.operation_id} {status} {kind}"
                assert "schema" in media, f"{where}: no schema"
                problems += schema_problems(doc, media["schema"], where)
                if kind == EVENT_STREAM:
                    problems += schema_problems(doc, media["x-itemSchema"], where + " events")
    assert problems == []


def test_error_answers_are_documented_as_the_error_body(run):
    for op in run["ops"].values():
        for status, response in op.spec["responses"].items():
            if int(status) >= 400:
                assert response["content"] == {"application/json": {"schema": {
                    "$ref": "#/components/schemas/ErrorBody"}}}, (op.operation_id, status)


def test_the_schema_walk_finds_bare_objects_and_maps_pass():
    doc = {"components": {"schemas": {"Bare": {"type": "object"}, "Map": {
        "type": "object", "additionalProperties": {}}}}}
    wrapped = {"type": "object", "properties": {"a": {"$ref": "#/components/schemas/Bare"},
                                               "b": {"$ref": "#/components/schemas/Map"},
                                               "c": {"anyOf": [{"type": "object"}, {"type": "null"}]},
                                               "d": {}}}
    assert schema_problems(doc, wrapped, "$") == [
        "#/components/schemas/Bare: an object without properties that is not a map",
        "$.c|0: an object without properties that is not a map",
        "$.d: untyped",
    ]


def test_the_answer_check_catches_undeclared_statuses_types_and_bodies():
    doc = {"openapi": "3.1.0", "paths": {"/x": {"get": {"operationId": "x", "responses": {
        "200": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/X"}}}}}}}},
        "components": {"schemas": {"X": {"type": "object", "properties": {"n": {"type": "integer"}},
                                         "required": ["n"]}}}}
    op = operations(doc)["x"]
    contract = Contract(doc)

    class Answer:
        def __init__(self, status: int, body: Any, kind: str = "application/json"):
            self.status_code, self.content = status, json.dumps(body).encode()
            self.headers, self.text = {"content-type": kind}, self.content.decode()

        def json(self) -> Any:
            return json.loads(self.content)

    assert response_problems(contract, op, Answer(200, {"n": 1})) == []
    assert response_problems(contract, op, Answer(200, {"n": "1"}))
    assert response_problems(contract, op, Answer(200, {"n": 1, "undocumented": 2}))
    assert response_problems(contract, op, Answer(200, {}))
    assert response_problems(contract, op, Answer(404, {"n": 1}))
    assert response_problems(contract, op, Answer(200, {"n": 1}, EVENT_STREAM))

