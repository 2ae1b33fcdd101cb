"""Compatibility guard: every route's JSON keys and types, as main answered them, still hold.

The API's handlers are being rewritten to return typed Structs (issue #8, item 3). Clients must not
notice: on the sample corpus, each response must keep every key it had, with the same JSON type, and
the same status. New keys are fine. The expected shapes live in `snapshots/response_shapes.json`,
generated from the handlers as they were before the rewrite; `UPDATE_SNAPSHOTS=1` writes it afresh
(only do that for a deliberate, reviewed change of the contract).

Shape grammar, as stored in the snapshot:
- a JSON type name: "string", "integer", "number", "boolean" or "null";
- an object: {key: shape};
- a list: {"[]": shape of its items, merged over all items}; an empty list is {"[]": []};
- alternatives: a list of two or more shapes, e.g. ["null", "string"]; [] means nothing was seen.
A stream is recorded as its event names in order (runs of one name collapsed) and the merged shape
of each event's data; data that is not JSON (OpenAI's `[DONE]`) becomes the event `name:data`.
A value seen only as null (a document's `error`, an error's `code`) pins no type: see `compare`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient
from support.sse import sse_events

from api.app import create_app
from rag.config import Settings

SNAPSHOT = Path(__file__).resolve().parent / "snapshots" / "response_shapes.json"
UPDATE = os.environ.get("UPDATE_SNAPSHOTS") == "1"
LIST = "[]"  # the one key of a list shape; no response of this API has a key spelled so

Shape = str | dict[str, Any] | list[Any]


# -- shapes ---------------------------------------------------------------------------------------

def _alternatives(shape: Shape) -> list[Shape]:
    return list(shape) if isinstance(shape, list) else [shape]


def _is_list_shape(shape: Shape) -> bool:
    return isinstance(shape, dict) and set(shape) == {LIST}


def _union(alternatives: list[Shape]) -> Shape:
    """Merge alternatives: one object shape (keys united), one list shape, each type name once."""
    names: set[str] = set()
    obj: dict[str, Shape] | None = None
    items: list[Shape] | None = None
    for alt in (a for shape in alternatives for a in _alternatives(shape)):
        if isinstance(alt, str):
            names.add(alt)
        elif _is_list_shape(alt):
            items = (items or []) + [alt[LIST]]
        else:
            obj = dict(obj or {})
            for key, value in alt.items():
                obj[key] = _union([obj[key], value]) if key in obj else value
    merged: list[Shape] = sorted(names)
    if obj is not None:
        merged.append(obj)
    if items is not None:
        merged.append({LIST: _union(items)})
    return merged[0] if len(merged) == 1 else merged


def shape_of(value: Any) -> Shape:
    """The shape of a decoded JSON value (see the module docstring for the grammar)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return {LIST: _union([shape_of(v) for v in value])}
    if isinstance(value, dict):
        assert LIST not in value, "a response key collides with the list marker of the shape grammar"
        return {k: shape_of(v) for k, v in value.items()}
    raise TypeError(f"not a JSON value: {value!r}")


def _matches(expected: list[Shape], actual: Shape, where: str) -> list[str]:
    """Problems of one actual alternative against the expected alternatives ([] if it fits one)."""
    if isinstance(actual, str):
        if actual in expected or (actual == "integer" and "number" in expected):
            return []
        return [f"{where}: {actual} where the snapshot has {_describe(expected)}"]
    kind = "list" if _is_list_shape(actual) else "object"
    candidates = [e for e in expected if not isinstance(e, str) and (kind == "list") == _is_list_shape(e)]
    if not candidates:
        return [f"{where}: {kind} where the snapshot has {_describe(expected)}"]
    if kind == "list":
        return compare(candidates[0][LIST], actual[LIST], f"{where}[]")
    problems = []
    for key, want in candidates[0].items():
        if key not in actual:
            problems.append(f"{where}.{key}: missing")
        else:
            problems.extend(compare(want, actual[key], f"{where}.{key}"))
    return problems


def _describe(alternatives: list[Shape]) -> str:
    return " or ".join(a if isinstance(a, str) else ("list" if _is_list_shape(a) else "object")
                       for a in alternatives)


def compare(expected: Shape, actual: Shape, where: str = "$") -> list[str]:
    """What in `actual` breaks a client written against `expected`; [] when compatible.

    Every expected key must be present with a compatible type; extra keys are fine. Each kind of
    value seen now must have been seen before, except an integer where a number was. A value seen
    only as null (or a list seen only empty) pinned no type, so anything may take its place.
    """
    want = _alternatives(expected)
    if want in ([], ["null"]):
        return []
    return [p for alt in _alternatives(actual) for p in _matches(want, alt, where)]


# -- what a response looks like -------------------------------------------------------------------

def _media_type(response) -> str:
    return response.headers.get("content-type", "").split(";")[0].strip()


def observe(response, *, stream: bool = False) -> dict[str, Any]:
    """Status and shape of a response: a JSON body (and its media type), a stream of events, or nothing.

    A stream's media type is not recorded: main sends its chat completion chunks as
    `application/json`, a fault a rewrite may fix, not a contract to keep.
    """
    seen: dict[str, Any] = {"status": response.status_code}
    if response.status_code == 204:
        assert response.content == b"", "a 204 has no body"
        return seen
    if not stream:
        seen["content_type"] = _media_type(response)
        seen["body"] = shape_of(response.json())
        return seen
    order: list[str] = []
    data: dict[str, list[Shape]] = {}
    for name, raw in sse_events(response.text):
        try:
            shape = shape_of(json.loads(raw))
        except json.JSONDecodeError:
            name, shape = f"{name}:{raw}", "string"
        if not order or order[-1] != name:
            order.append(name)
        data.setdefault(name, []).append(shape)
    assert order, "a stream with no events"
    seen["events"] = order
    seen["data"] = {name: _union(shapes) for name, shapes in data.items()}
    return seen


def compare_observed(expected: dict[str, Any], actual: dict[str, Any]) -> list[str]:
    """Problems of one case: status and media type must match; bodies and events as `compare` says."""
    problems = [f"{k}: {actual.get(k)!r}, snapshot has {expected[k]!r}"
                for k in ("status", "content_type") if k in expected and actual.get(k) != expected[k]]
    if "body" in expected:
        problems += compare(expected["body"], actual["body"], "$") if "body" in actual else ["body: missing"]
    if "events" in expected:
        order = iter(actual.get("events", []))
        if not all(name in order for name in expected["events"]):  # a subsequence: new events may appear
            problems.append(f"events: {actual.get('events')}, snapshot has {expected['events']} in this order")
        for name, shape in expected["data"].items():
            if name in actual.get("data", {}):
                problems += compare(shape, actual["data"][name], name)
            else:
                problems.append(f"{name}: no such event")
    return problems


# -- the requests ---------------------------------------------------------------------------------

def _wait_until_ready(client: TestClient, ids: list[int]) -> None:
    deadline = time.monotonic() + 60
    for doc_id in ids:
        while (status := client.get(f"/collections/wren/documents/{doc_id}").json()["status"]) != "ready":
            assert status in ("queued", "processing") and time.monotonic() < deadline, status
            time.sleep(0.05)


def exercise(client: TestClient) -> dict[str, dict[str, Any]]:
    """Every non-passthrough route on the sample corpus, in an order that keeps the data known."""
    seen: dict[str, dict[str, Any]] = {}

    def record(case: str, response, status: int, *, stream: bool = False) -> Any:
        assert response.status_code == status, (case, response.status_code, response.text)
        assert case not in seen, case
        seen[case] = observe(response, stream=stream)
        return response.json() if "body" in seen[case] else None

    record("GET /health", client.get("/health"), 200)
    record("GET /health/live", client.get("/health/live"), 200)
    record("GET /health/ready", client.get("/health/ready"), 200)

    # Collections
    record("GET /collections", client.get("/collections"), 200)
    record("POST /collections", client.post("/collections", json={"name": "shapes", "chunk_size": 128}), 201)
    record("POST /collections [409 exists]", client.post("/collections", json={"name": "shapes"}), 409)
    record("POST /collections [400 invalid field]",
           client.post("/collections", json={"name": "x", "chunk_size": 4}), 400)
    record("GET /collections/{name}", client.get("/collections/wren"), 200)
    record("GET /collections/{name} [404]", client.get("/collections/nope"), 404)
    record("DELETE /collections/{name}", client.delete("/collections/shapes"), 204)

    # Documents: each upload brings a new text, so none is skipped as unchanged.
    docs = "/collections/wren/documents"
    uploaded: list[int] = []
    for wait, status in ((False, 202), (True, 201)):
        suffix = ", wait" if wait else ""
        query = "?wait=true" if wait else ""
        note = f"# Hives {wait}\n\nThe co-operative keeps beehives beside the barn array ({wait}).\n".encode()
        body = record(f"POST /collections/{{name}}/documents [multipart{suffix}]",
                      client.post(docs + query, files=[("files", (f"hives-{wait}.md", note, "text/markdown"))]),
                      status)
        uploaded += [d["id"] for d in body["data"]]
        item = {"text": f"Volunteers clean the panels each April ({wait}).", "title": "Cleaning",
                "source": f"cleaning-{wait}", "metadata": {"category": "maintenance"}}
        body = record(f"POST /collections/{{name}}/documents [json{suffix}]",
                      client.post(docs + query, json={"documents": [item]}), status)
        uploaded += [d["id"] for d in body["data"]]
    record("POST /collections/{name}/documents [415 unsupported file]",
           client.post(docs, files=[("files", ("photo.png", b"\x89PNG"))]), 415)
    record("POST /collections/{name}/documents [415 content type]",
           client.post(docs, content=b"x", headers={"content-type": "text/plain"}), 415)
    record("POST /collections/{name}/documents [400 unreadable file]",
           client.post(docs, files=[("files", ("empty.txt", b""))]), 400)
    _wait_until_ready(client, uploaded)
    record("GET /collections/{name}/documents", client.get(docs), 200)
    pdf = next(d for d in client.get(docs).json()["data"] if d["source"].endswith(".pdf"))
    record("GET /collections/{name}/documents/{document_id}", client.get(f"{docs}/{pdf['id']}"), 200)
    record("DELETE /collections/{name}/documents/{document_id}", client.delete(f"{docs}/{uploaded[-1]}"), 204)
    record("DELETE /collections/{name}/documents", client.delete(docs, params={"source_prefix": "nothing/"}), 200)
    record("DELETE /collections/{name}/documents [400 neither]", client.delete(docs), 400)
    record("GET /collections/{name}/documents/{document_id} [404]", client.get(f"{docs}/{uploaded[-1]}"), 404)

    # Search and ask. This query finds PDF pages (page is a number) and other files (page is null).
    for mode in ("dense", "lexical", "hybrid"):
        record(f"POST /collections/{{name}}/search [{mode}]",
               client.post("/collections/wren/search",
                           json={"query": "generation by month in 2024", "mode": mode, "k": 20}), 200)
    # Its citations quote the PDF (page a number) and may quote another file too (page null, as the
    # chat below, which cites HTML): the snapshot holds page as either, the type the API documents.
    question = {"question": "How much electricity did the arrays generate in 2024?"}
    record("POST /collections/{name}/ask", client.post("/collections/wren/ask", json=question), 200)
    record("POST /collections/{name}/ask [stream]",
           client.post("/collections/wren/ask", json={**question, "stream": True}), 200, stream=True)

    # Similarity and the OpenAI-compatible routes.
    record("POST /similarity [a, b]", client.post("/similarity", json={"a": "a cat", "b": "a feline"}), 200)
    record("POST /similarity [pairs]",
           client.post("/similarity", json={"pairs": [["a cat", "a feline"], ["a cat", "Python"]]}), 200)
    record("POST /similarity [400 invalid input]", client.post("/similarity", json={"a": "only a"}), 400)
    record("GET /v1/models", client.get("/v1/models"), 200)
    record("GET /v1/models/{model_id}", client.get("/v1/models/extractive"), 200)
    record("GET /v1/models/{model_id} [404 unknown]", client.get("/v1/models/gpt-x"), 404)
    embed = {"model": "all-MiniLM-L6-v2", "input": ["hello world", "cats"]}
    record("POST /v1/embeddings [float]", client.post("/v1/embeddings", json=embed), 200)
    record("POST /v1/embeddings [base64]",
           client.post("/v1/embeddings", json={**embed, "encoding_format": "base64"}), 200)
    record("POST /v1/embeddings [404 model]",
           client.post("/v1/embeddings", json={**embed, "model": "text-embedding-3-small"}), 404)
    chat = {"model": "extractive", "collection": "wren",
            "messages": [{"role": "user", "content": "How many panels are on the school roof?"}]}
    record("POST /v1/chat/completions [collection]", client.post("/v1/chat/completions", json=chat), 200)
    record("POST /v1/chat/completions [collection, stream]",
           client.post("/v1/chat/completions", json={**chat, "stream": True}), 200, stream=True)
    no_collection = {"model": "extractive", "messages": chat["messages"]}
    record("POST /v1/chat/completions [400 no collection, no key]",
           client.post("/v1/chat/completions", json=no_collection), 400)
    return seen


def _route_of(case: str) -> tuple[str, str]:
    method, path = case.split(" [")[0].split(" ", 1)
    return method, path


def app_routes(app) -> set[tuple[str, str]]:
    """(method, path template) of every route that must be snapshotted: not passthrough, not /schema,
    not the web page and its files (routes left out of the OpenAPI document)."""
    routes = set()
    for route in app.routes:
        if route.path.startswith("/schema"):
            continue
        for handler in route.route_handlers:
            if "passthrough" in (handler.tags or ()) or not handler.resolve_include_in_schema():
                continue
            for method in handler.http_methods - {"OPTIONS", "HEAD"}:
                routes.add((method, re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path)))
    return routes


# -- fixtures and tests ---------------------------------------------------------------------------

def _load_snapshot() -> dict[str, dict[str, Any]]:
    return json.loads(SNAPSHOT.read_text()) if SNAPSHOT.exists() else {}


@pytest.fixture(scope="module")
def _runs() -> dict[str, Any]:
    return {}


@pytest.fixture
def observed(_runs, seeded_home: Path, tmp_path_factory, rag_env) -> dict[str, Any]:
    """What every case answers, from one app over a copy of the seeded home, run once per module.

    Run lazily inside the first test that asks, so the network guard and the cleared environment
    of the function-scoped autouse fixtures are in force while the app runs.
    """
    if "error" in _runs:
        raise _runs["error"]
    if "cases" not in _runs:
        home = tmp_path_factory.mktemp("shapes") / "home"
        shutil.copytree(seeded_home, home)
        try:
            app = create_app(Settings(home=home), warm_up=False)
            with TestClient(app=app) as client:
                _runs["cases"] = exercise(client)
            _runs["routes"] = app_routes(app)
        except BaseException as e:
            _runs["error"] = e
            raise
        if UPDATE:
            SNAPSHOT.parent.mkdir(parents=True, exist_ok=True)
            SNAPSHOT.write_text(json.dumps(_runs["cases"], indent=2, sort_keys=True, ensure_ascii=False) + "\n")
    return _runs


def test_the_snapshot_exists_and_names_exactly_the_cases_run(observed):
    assert SNAPSHOT.exists(), f"{SNAPSHOT} is missing; generate it with UPDATE_SNAPSHOTS=1 from main's behaviour"
    snapshot = _load_snapshot()
    assert sorted(snapshot) == sorted(observed["cases"])


def test_every_route_has_a_case(observed):
    covered = {_route_of(case) for case in observed["cases"]}
    assert observed["routes"] - covered == set()


@pytest.mark.parametrize("case", sorted(_load_snapshot()))
def test_response_keeps_its_shape(case: str, observed):
    expected = _load_snapshot()[case]
    actual = observed["cases"].get(case)
    assert actual is not None, f"{case} was not run"
    problems = compare_observed(expected, actual)
    assert problems == [], f"{case} changed incompatibly:\n  " + "\n  ".join(problems)


def test_error_bodies_have_the_error_contract(observed):
    errors = {case: seen for case, seen in observed["cases"].items() if seen["status"] >= 400}
    assert {seen["status"] for seen in errors.values()} >= {400, 404, 409, 415}
    contract = {"error": {"message": "string", "type": "string", "param": ["null", "string"],
                          "code": ["null", "string"]}}
    for case, seen in errors.items():
        assert compare(contract, seen["body"]) == [], case


# -- the comparison itself ------------------------------------------------------------------------

def test_shapes_merge_list_items_and_record_null_beside_a_type():
    value = {"hits": [{"page": 1, "score": 0.5, "meta": {"a": "x"}}, {"page": None, "score": 1.0, "meta": {"b": True}}],
             "empty": [], "ok": False}
    assert shape_of(value) == {
        "hits": {LIST: {"page": ["integer", "null"], "score": "number", "meta": {"a": "string", "b": "boolean"}}},
        "empty": {LIST: []}, "ok": "boolean"}


@pytest.mark.parametrize(("before", "after", "compatible"), [
    ({"a": 1, "b": "x"}, {"a": 2, "b": "y", "c": [1]}, True),  # a key added
    ({"a": 1, "b": "x"}, {"a": 2}, False),  # a key removed
    ({"a": 1}, {"a": "1"}, False),  # retyped
    ({"a": 1.5}, {"a": 2}, True),  # an integer where a number was
    ({"a": 2}, {"a": 1.5}, False),  # a number where an integer was
    ({"a": "x"}, {"a": None}, False),  # null where it never was
    ({"a": [None, "x"]}, {"a": ["x"]}, True),  # never null any more
    ({"a": None}, {"a": {"b": 1}}, True),  # seen only as null: its type was never pinned
    ({"a": [{"b": 1}]}, {"a": [{"c": 1}]}, False),  # an item's key removed
    ({"a": [{"b": 1}]}, {"a": []}, True),  # no items to check
    ({"a": []}, {"a": [{"b": 1}]}, True),
    ({"a": [1]}, {"a": {"0": 1}}, False),  # a list became an object
    ({"a": {"b": 1}}, {"a": [{"b": 1}]}, False),
])
def test_compare_allows_additions_only(before, after, compatible: bool):
    assert (compare(shape_of(before), shape_of(after)) == []) is compatible


def test_compare_observed_checks_status_and_event_order():
    before = {"status": 200, "content_type": "text/event-stream", "events": ["delta", "citations", "done"],
              "data": {"delta": {"text": "string"}, "citations": {LIST: []}, "done": {"model": "string"}}}
    assert compare_observed(before, before) == []
    assert compare_observed(before, {**before, "events": ["delta", "ping", "citations", "done"]}) == []
    assert compare_observed(before, {**before, "events": ["delta", "done", "citations"]})
    assert compare_observed(before, {**before, "status": 201})
    assert compare_observed(before, {**before, "data": {**before["data"], "done": {"usage": {}}}})
    assert compare_observed({"status": 204}, {"status": 204}) == []
