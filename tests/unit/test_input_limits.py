"""Every input is bounded by a setting, and every bad input answers a 4xx that names the problem.

Before, invalid UTF-8 or JSON nested 1,000 deep answered 500 on every JSON route, a filter of
1,000 keys made SQLite refuse the statement (500), 1,001 files or a 5,000-character file name
answered a bare "Request Entity Too Large", random bytes named `.txt` were ingested as text, and
upload names were kept verbatim (`../../../../etc/x.txt`, right-to-left overrides).
"""

from __future__ import annotations

import json
import random
from dataclasses import replace

import pytest
from litestar.testing import TestClient
from support.fake_embedder import KIND
from support.responses import error_of

from api.app import create_app
from api.uploads import display_name
from rag.config import Settings

JSON_ROUTES = ["/collections", "/collections/wren/documents", "/collections/wren/search", "/collections/wren/ask",
               "/similarity", "/v1/chat/completions", "/v1/embeddings"]


def make_client(monkeypatch: pytest.MonkeyPatch, **env: str) -> TestClient:
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return TestClient(app=create_app(replace(Settings.from_env(), embedder=KIND), warm_up=False))


@pytest.fixture
def client(fake_home, monkeypatch):
    with make_client(monkeypatch) as c:
        yield c


def _json(client: TestClient, route: str, body: bytes):  # noqa: ANN202
    return client.post(route, content=body, headers={"content-type": "application/json"})


# -- finding 8: JSON that used to answer 500 ------------------------------------------------------

@pytest.mark.parametrize("route", JSON_ROUTES)
def test_invalid_utf8_in_a_json_body_is_a_400_naming_it(client, route) -> None:
    error = error_of(_json(client, route, b'{"query": "caf\xe9", "name": "x", "question": "q"}'), 400)
    assert error["param"] == "body" and "not valid UTF-8 (byte 0xe9 at position 14)" in error["message"]


@pytest.mark.parametrize("route", JSON_ROUTES)
def test_json_nested_a_thousand_deep_is_a_400_naming_the_limit(client, route) -> None:
    deep = "[" * 1000 + "]" * 1000
    body = f'{{"query": "x", "question": "x", "messages": {deep}, "documents": {deep}}}'.encode()
    error = error_of(_json(client, route, body), 400)
    assert error["param"] == "body" and error["code"] == "limit_exceeded"
    assert "nested 1,001 levels deep; the limit is 32 (RAG_MAX_JSON_DEPTH)" in error["message"]


def test_brackets_inside_strings_do_not_count_as_nesting(client) -> None:
    query = "[[[[{{{{" * 10 + ' \\" ]]]] still one string'
    r = client.post("/collections/wren/search", json={"query": query, "k": 1})
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("route", ["/collections/wren/search", "/collections/wren/ask"])
def test_a_filter_of_a_thousand_keys_is_a_400_naming_the_limit(client, route) -> None:
    body = {"query": "panels", "question": "panels", "filter": {f"k{i}": i for i in range(1000)}}
    body = {k: v for k, v in body.items() if k != ("question" if route.endswith("search") else "query")}
    error = error_of(client.post(route, json=body), 400)
    assert error["param"] == "filter"
    assert error["message"] == "filter has 1,000 keys; the limit is 32 (RAG_MAX_FILTER_KEYS)"
    values = {"filter": {"category": [f"v{i}" for i in range(300)]}}
    error = error_of(client.post(route, json={**body, **values}), 400)
    assert error["message"] == "filter has 300 values; the limit is 256 (RAG_MAX_FILTER_VALUES)"


# -- item 3: queries, questions, conversations ----------------------------------------------------

@pytest.mark.parametrize(("route", "field"), [("/collections/wren/search", "query"),
                                              ("/collections/wren/ask", "question")])
def test_a_megabyte_query_or_question_is_a_400_naming_the_limit(client, route, field) -> None:
    error = error_of(client.post(route, json={field: "panel " * 200_000}), 400)
    assert error["param"] == field and error["code"] == "limit_exceeded"
    assert error["message"] == f"{field} has 1,200,000 characters; the limit is 4,000 (RAG_MAX_QUERY_CHARS)"


def test_query_tokens_and_distinct_terms_are_limited(fake_home, monkeypatch) -> None:
    with make_client(monkeypatch, RAG_MAX_QUERY_TOKENS="20", RAG_MAX_QUERY_TERMS="5") as c:
        error = error_of(c.post("/collections/wren/search", json={"query": " ".join(["panel"] * 30)}), 400)
        assert error["message"] == "query has 30 tokens; the limit is 20 (RAG_MAX_QUERY_TOKENS)"
        error = error_of(c.post("/collections/wren/ask", json={"question": "roof panels batteries meters wind sun"}),
                         400)
        assert error["message"] == "question has 6 distinct search terms; the limit is 5 (RAG_MAX_QUERY_TERMS)"
        assert c.post("/collections/wren/search", json={"query": "roof panels roof panels"}).status_code == 200


def test_messages_per_conversation_are_limited(fake_home, monkeypatch) -> None:
    with make_client(monkeypatch, RAG_MAX_MESSAGES="4") as c:
        messages = [{"role": "user", "content": "How many panels?"}] * 5
        error = error_of(c.post("/v1/chat/completions", json={"collection": "wren", "messages": messages}), 400)
        assert error["param"] == "messages"
        assert error["message"] == "messages has 5 messages; the limit is 4 per conversation (RAG_MAX_MESSAGES)"
        ok = c.post("/v1/chat/completions", json={"collection": "wren", "messages": messages[:4]})
        assert ok.status_code == 200, ok.text


# -- uploads ---------------------------------------------------------------------------------------

def test_a_thousand_and_one_files_is_a_413_naming_the_limit(client) -> None:
    before = client.get("/collections/wren").json()["documents"]
    files = [("files", (f"f{i}.txt", b"A short note.")) for i in range(1001)]
    error = error_of(client.post("/collections/wren/documents", files=files), 413)
    assert error["message"] == "the upload has 1,001 parts; the limit is 100 files per upload (RAG_MAX_UPLOAD_FILES)"
    assert client.get("/collections/wren").json()["documents"] == before


def test_a_five_thousand_character_file_name_is_a_400_naming_the_limit(client) -> None:
    error = error_of(client.post("/collections/wren/documents",
                                 files=[("files", ("n" * 4996 + ".txt", b"A short note."))]), 400)
    assert error["param"] == "files"
    assert error["message"].startswith("a file name has 5,000 characters; the limit is 255 (RAG_MAX_FILENAME_CHARS)")


def test_documents_per_json_body_and_tokens_per_document_are_limited(fake_home, monkeypatch) -> None:
    with make_client(monkeypatch, RAG_MAX_BODY_DOCUMENTS="2", RAG_MAX_DOCUMENT_TOKENS="50") as c:
        before = c.get("/collections/wren").json()["documents"]
        docs = [{"text": f"note {i}"} for i in range(3)]
        error = error_of(c.post("/collections/wren/documents", json={"documents": docs}), 413)
        assert error["message"] == "the body has 3 documents; the limit is 2 (RAG_MAX_BODY_DOCUMENTS)"
        long = "panel " * 100
        error = error_of(c.post("/collections/wren/documents", json={"documents": [{"text": long, "source": "l"}]}),
                         413)
        assert error["message"] == "l: 100 tokens; the limit is 50 per document (RAG_MAX_DOCUMENT_TOKENS)"
        error = error_of(c.post("/collections/wren/documents", files=[("files", ("long.txt", long.encode()))]), 413)
        assert error["files"][0]["code"] == "payload_too_large"
        assert "long.txt: 100 tokens; the limit is 50 per document (RAG_MAX_DOCUMENT_TOKENS)" in error["message"]
        assert c.get("/collections/wren").json()["documents"] == before


@pytest.mark.parametrize("name", ["noise.txt", "noise.md", "noise.html", "noise"])
def test_random_bytes_are_refused_as_binary_whatever_the_name(client, name) -> None:
    noise = bytes(b for b in random.Random(7).randbytes(200_000) if b != 0)
    error = error_of(client.post("/collections/wren/documents", files=[("files", (name, noise))]), 415)
    assert error["files"][0]["code"] == "unsupported_file"


@pytest.mark.parametrize(("data", "kind"), [(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "a PNG image"),
                                            (b"\x7fELF\x02\x01\x01" + b"\x00" * 64, "an executable"),
                                            (b"\x1f\x8b\x08\x00" + b"\x00" * 64, "gzip data")])
def test_binary_formats_are_refused_under_a_text_name(client, data, kind) -> None:
    error = error_of(client.post("/collections/wren/documents", files=[("files", ("notes.md", data))]), 415)
    assert error["files"][0]["error"].startswith(f"notes.md: {kind}, not a MD file")


def test_legacy_windows_text_is_still_text(client) -> None:
    text = "Caf\xe9 menu: cr\xe8me br\xfbl\xe9e, \u201cquoted\u201d \u2013 all in Windows-1252.".encode("cp1252")
    r = client.post("/collections/wren/documents?wait=true", files=[("files", ("menu.txt", text))])
    assert r.status_code == 201, r.text


def test_no_error_message_carries_a_python_repr(client) -> None:
    r = client.post("/collections/wren/documents", files=[("files", ("broken.docx", b"PK\x03\x04" + b"x" * 100))])
    error = error_of(r, 400)
    assert " object at 0x" not in json.dumps(error)


# -- item 7: display names -------------------------------------------------------------------------

@pytest.mark.parametrize(("sent", "shown"), [("../../../../etc/x.txt", "x.txt"),
                                             ("invoice\u202etxt.exe.txt", "invoicetxt.exe.txt")])
def test_upload_names_become_display_names_and_the_original_is_kept(client, sent, shown) -> None:
    r = client.post("/collections/wren/documents?wait=true", files=[("files", (sent, b"A note about the roof."))])
    assert r.status_code == 201, r.text
    [doc] = r.json()["data"]
    assert doc["source"] == shown
    stored = client.get(f"/collections/wren/documents/{doc['id']}").json()
    assert stored["source"] == shown and stored["metadata"]["upload_name"] == sent


def test_display_names_drop_control_and_format_characters() -> None:
    assert display_name("tab\tand\x07bell\u200b.txt") == "tabandbell.txt"
    assert display_name("a/b/\u202e\u2066 ../") == "(unnamed file)"
    assert display_name("..") == display_name(None) == "(unnamed file)"
    assert display_name("  report 2024.pdf ") == "report 2024.pdf"
    assert display_name("C:\\Users\\me\\notes.txt") == "notes.txt"
