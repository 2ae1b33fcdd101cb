"""The HTTP API through Litestar's TestClient, on a real store and real indexes, with the sample
corpus embedded by the fake embedder: the routes' plumbing, not the model's meaning (that is in
tests/integration/test_api_model.py)."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import pytest
from litestar.testing import TestClient
from sqlalchemy import text
from support.fake_embedder import DIM, KIND, MODEL_ID
from support.responses import error_of
from support.sse import ask_events, chat_chunks

from api.app import create_app
from rag.config import Settings
from rag.indexes.dense_faiss import IndexCache, VectorIndex
from rag.service import Service
from rag.store import Store


def make_client(monkeypatch=None, **env: str) -> TestClient:
    if monkeypatch is not None:
        for k, v in env.items():
            monkeypatch.setenv(k, v)
    return TestClient(app=create_app(replace(Settings.from_env(), embedder=KIND), warm_up=False))


@pytest.fixture
def client(fake_backend_home: Path):
    """The app on the seeded sample, on each backend (SQLite, PostgreSQL)."""
    with make_client() as c:
        yield c


# -- health, auth ---------------------------------------------------------------------------------

def test_health_and_auth(fake_home, monkeypatch):
    with make_client(monkeypatch, RAG_API_KEYS="k1,k2") as c:
        assert c.get("/health").json()["status"] == "ok"
        assert error_of(c.get("/collections"), 401)["type"] == "authentication_error"
        error_of(c.get("/collections", headers={"Authorization": "Bearer nope"}), 401)
        error_of(c.post("/v1/embeddings", json={}), 401)
        ok = c.get("/collections", headers={"Authorization": "Bearer k2"})
        assert ok.status_code == 200 and ok.json()["data"][0]["name"] == "wren"


# -- collections ----------------------------------------------------------------------------------

def test_collections_crud_and_pagination(client):
    created = client.post("/collections", json={"name": "notes", "chunk_size": 128, "chunk_overlap": 16})
    assert created.status_code == 201
    assert created.json()["embedder"] == {"kind": KIND, "model": MODEL_ID, "dim": DIM}  # the settings' default
    assert error_of(client.post("/collections", json={"name": "notes"}), 409)["type"] == "conflict_error"
    assert error_of(client.post("/collections", json={"name": "bad name"}), 400)["param"] == "name"
    assert error_of(client.post("/collections", json={"name": "x", "chunk_size": 4}), 400)["param"] == "chunk_size"
    assert error_of(client.post("/collections", json={"name": "x", "embedder": "magic"}), 400)
    assert error_of(client.post("/collections", content=b"{not json", headers={"content-type": "application/json"}), 400)
    page = client.get("/collections?limit=1").json()
    assert [c["name"] for c in page["data"]] == ["notes"] and page["has_more"] is True
    page2 = client.get("/collections?limit=1&after=notes").json()
    assert [c["name"] for c in page2["data"]] == ["wren"] and page2["has_more"] is False
    assert client.get("/collections/wren").json()["documents"] == 17
    assert client.delete("/collections/notes").status_code == 204
    error_of(client.get("/collections/notes"), 404)
    error_of(client.delete("/collections/notes"), 404)


# -- documents ------------------------------------------------------------------------------------

def test_upload_wait_then_search_and_offsets(client):
    note = b"# Bees\n\nThe co-operative keeps two beehives beside the barn array since 2023.\n"
    r = client.post("/collections/wren/documents?wait=true", files=[("files", ("bees.md", note, "text/markdown"))])
    assert r.status_code == 201
    [doc] = r.json()["data"]
    assert doc["status"] == "ready" and doc["source"] == "bees.md"
    hits = client.post("/collections/wren/search", json={"query": "beehives by the barn", "k": 3}).json()["hits"]
    assert hits[0]["document_id"] == doc["id"]
    for hit in hits:
        text = client.get(f"/collections/wren/documents/{hit['document_id']}").json()["text"]
        assert text[hit["start_char"]:hit["end_char"]] == hit["text"]
    # The same upload again is unchanged: ready at once, nothing re-embedded.
    again = client.post("/collections/wren/documents", files=[("files", ("bees.md", note))])
    assert again.status_code == 202 and again.json()["data"][0]["status"] == "ready"


def test_json_documents_are_queued_then_ready(client):
    r = client.post("/collections/wren/documents", json={"documents": [
        {"text": "Volunteers clean the panels each April.\n\nThey use soft brushes only.", "title": "Cleaning",
         "source": "cleaning-note", "metadata": {"category": "maintenance"}}]})
    assert r.status_code == 202
    [doc] = r.json()["data"]
    assert doc["status"] in ("queued", "processing", "ready")
    deadline = time.monotonic() + 60
    while client.get(f"/collections/wren/documents/{doc['id']}").json()["status"] != "ready":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    got = client.get(f"/collections/wren/documents/{doc['id']}").json()
    assert got["title"] == "Cleaning" and got["metadata"]["category"] == "maintenance" and got["chunks"] >= 1
    hits = client.post("/collections/wren/search", json={"query": "panel cleaning brushes", "k": 5,
                                                         "filter": {"category": "maintenance"}}).json()["hits"]
    assert hits and {h["document_id"] for h in hits} == {doc["id"]}
    error_of(client.post("/collections/wren/documents", json={"documents": []}), 400)
    error_of(client.post("/collections/wren/documents", json={"documents": [{"title": "no text"}]}), 400)


def test_bad_uploads_ingest_nothing(client):
    before = client.get("/collections/wren").json()["documents"]
    good = ("files", ("fine.txt", b"A perfectly good file."))
    r = client.post("/collections/wren/documents", files=[good, ("files", ("photo.png", b"\x89PNG"))])
    body = error_of(r, 415)
    assert [f["name"] for f in body["files"]] == ["photo.png"]
    r = client.post("/collections/wren/documents", files=[good, ("files", ("empty.txt", b"")),
                                                          ("files", ("broken.pdf", b"%PDF-1.4 garbage"))])
    body = error_of(r, 400)
    assert sorted(f["name"] for f in body["files"]) == ["broken.pdf", "empty.txt"]
    assert all(f["error"] for f in body["files"])
    assert client.get("/collections/wren").json()["documents"] == before
    error_of(client.post("/collections/nope/documents", files=[good]), 404)
    error_of(client.post("/collections/wren/documents", content=b"x", headers={"content-type": "text/plain"}), 415)


def test_upload_over_the_limit_is_413(fake_home, monkeypatch):
    with make_client(monkeypatch, RAG_MAX_UPLOAD_MB="1") as c:
        big = b"word " * (300 * 1024)  # 1.5 MB
        error_of(c.post("/collections/wren/documents", files=[("files", ("big.txt", big))]), 413)
        assert c.get("/collections/wren").json()["documents"] == 17


def test_documents_pagination_get_and_delete(client):
    first = client.get("/collections/wren/documents?limit=10").json()
    assert len(first["data"]) == 10 and first["has_more"] is True
    assert "text" not in first["data"][0]
    rest = client.get(f"/collections/wren/documents?limit=10&after={first['data'][-1]['id']}").json()
    assert len(rest["data"]) == 7 and rest["has_more"] is False
    ids = [d["id"] for d in first["data"] + rest["data"]]
    assert ids == sorted(ids) and len(set(ids)) == 17
    pdf = next(d for d in first["data"] + rest["data"] if d["source"].endswith(".pdf"))
    assert client.delete(f"/collections/wren/documents/{pdf['id']}").status_code == 204
    error_of(client.get(f"/collections/wren/documents/{pdf['id']}"), 404)
    error_of(client.delete(f"/collections/wren/documents/{pdf['id']}"), 404)
    for mode in ("dense", "lexical", "hybrid"):
        hits = client.post("/collections/wren/search", json={"query": "generation by month in 2024", "mode": mode,
                                                             "k": 20}).json()["hits"]
        assert all(h["document_id"] != pdf["id"] for h in hits)
    error_of(client.get("/collections/wren/documents/abc"), 404)


# -- search ---------------------------------------------------------------------------------------

def test_search_modes_fields_and_errors(client):
    for mode in ("dense", "lexical", "hybrid"):
        r = client.post("/collections/wren/search", json={"query": "How many panels are on the school roof?",
                                                          "mode": mode, "k": 5})
        assert r.status_code == 200
        hits = r.json()["hits"]
        assert 1 <= len(hits) <= 5
        assert any("the-arrays.html" in h["source"] for h in hits[:3]), mode
        assert set(hits[0]) >= {"chunk_id", "document_id", "score", "text", "source", "title", "page",
                                "start_char", "end_char", "metadata", "dense_score", "lexical_score"}
        scores = [h["score"] for h in hits]
        assert scores == sorted(scores, reverse=True)
    hybrid = client.post("/collections/wren/search", json={"query": "school roof panels", "mode": "hybrid"}).json()
    assert any(h["dense_score"] is not None and h["lexical_score"] is not None for h in hybrid["hits"])
    pdf_hits = client.post("/collections/wren/search", json={"query": "generation by month in 2024", "k": 5}).json()["hits"]
    pages = [h["page"] for h in pdf_hits if h["source"].endswith(".pdf")]
    assert pages and all(p in (1, 2, 3) for p in pages)
    high = client.post("/collections/wren/search", json={"query": "school roof", "mode": "dense", "min_score": 0.99})
    assert high.json()["hits"] == []
    assert error_of(client.post("/collections/wren/search", json={"query": "x", "k": 0}), 400)["param"] == "k"
    assert error_of(client.post("/collections/wren/search", json={"query": "x", "k": 101}), 400)["param"] == "k"
    assert "mode" in error_of(client.post("/collections/wren/search", json={"query": "x", "mode": "fuzzy"}), 400)["message"]
    assert "filter" in error_of(client.post("/collections/wren/search", json={"query": "x", "filter": {"a b": 1}}), 400)["message"]
    assert error_of(client.post("/collections/wren/search", json={}), 400)["param"] == "query"
    assert error_of(client.post("/collections/wren/search", json={"query": "x", "extra": 1}), 400)
    error_of(client.post("/collections/nope/search", json={"query": "x"}), 404)


# -- ask (offline) --------------------------------------------------------------------------------

def test_ask_streamed_events(client):
    r = client.post("/collections/wren/ask", json={"question": "What quorum does a general meeting need?",
                                                   "stream": True})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    events = ask_events(r.text)
    kinds = [k for k, _ in events]
    assert kinds[-2:] == ["citations", "done"] and set(kinds[:-2]) == {"delta"}
    text = "".join(d["text"] for k, d in events if k == "delta")
    plain = client.post("/collections/wren/ask", json={"question": "What quorum does a general meeting need?"}).json()
    assert text.strip() == plain["answer"]
    assert events[-2][1] == plain["citations"] and events[-1][1]["model"] == "extractive"


def test_ask_errors(client):
    assert error_of(client.post("/collections/wren/ask", json={"question": ""}), 400)["param"] == "question"
    assert "OPENAI_API_KEY" in error_of(client.post("/collections/wren/ask",
                                                    json={"question": "q", "model": "gpt-5.4-mini"}), 400)["message"]
    error_of(client.post("/collections/wren/ask", json={"question": "q", "temperature": 3}), 400)
    error_of(client.post("/collections/nope/ask", json={"question": "q"}), 404)


# -- /v1 ------------------------------------------------------------------------------------------

def test_openai_compatible_chat_with_a_collection(client):
    body = {"model": "extractive", "collection": "wren",
            "messages": [{"role": "user", "content": "How many panels are on the school roof?"}]}
    r = client.post("/v1/chat/completions", json=body).json()
    assert r["object"] == "chat.completion" and r["model"] == "extractive"
    assert r["choices"][0]["message"]["role"] == "assistant"
    assert "540" in r["choices"][0]["message"]["content"]
    assert r["citations"] and all("quote" in c for c in r["citations"])
    streamed = client.post("/v1/chat/completions", json={**body, "stream": True})
    chunks = chat_chunks(streamed.text)
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks).strip() == r["choices"][0]["message"]["content"]
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop" and chunks[-1]["citations"] == r["citations"]
    no_key = error_of(client.post("/v1/chat/completions", json={"model": "gpt-5.4-mini", "messages": body["messages"]}), 400)
    assert "OPENAI_API_KEY" in no_key["message"]
    error_of(client.post("/v1/chat/completions", json={**body, "messages": []}), 400)
    error_of(client.post("/v1/chat/completions", json={**body, "collection": "nope"}), 404)


def test_openapi_schema_and_offline_docs(client):
    from openapi_spec_validator import validate

    schema = client.get("/schema/openapi.json").json()
    assert schema["openapi"].startswith("3.")
    validate(schema)  # raises on any violation of the OpenAPI 3 schema
    ops = {op["operationId"] for path in schema["paths"].values() for op in path.values() if isinstance(op, dict) and "operationId" in op}
    assert {"search", "ask", "similarity", "createCollection", "addDocuments", "createEmbeddings",
            "createChatCompletion", "listModels", "health"} <= ops
    page = client.get("/schema/swagger").text
    assert "http://" not in page and "https://" not in page  # nothing from a CDN
    assert client.get("/schema/assets/swagger-ui-bundle.js").status_code == 200


def test_user_mistakes_in_ids_and_chat_bodies_are_400s_not_500s(client):
    error_of(client.get("/collections/wren/documents/10000000000000000000"), 400)
    error_of(client.get("/collections/wren/documents?after=10000000000000000000"), 400)
    msgs = [{"role": "user", "content": "How much is a share?"}]
    base = {"model": "extractive", "collection": "wren", "messages": msgs}
    for bad in ({"temperature": "0.7"}, {"max_tokens": "100"}, {"k": 1000}, {"collection": 5},
                {"messages": [{"role": "user", "content": [{"type": "text", "text": None}]}]}):
        assert error_of(client.post("/v1/chat/completions", json={**base, **bad}), 400)["message"], bad


def test_a_document_deleted_while_queued_stays_deleted(fake_backend_home):
    from ingest.loaders import document_from_text
    from ingest.pipeline import Pipeline
    from rag.errors import DocumentNotFound

    service = Service(Settings.from_env())
    writer = service.writer(service.get_collection("wren"))
    doc = document_from_text("late-note", "A note that is deleted before the worker reaches it.")
    doc_id = writer.queue_document(source=doc.source, content_hash="h", title=None, text=doc.text, metadata={},
                                   owner="test")
    service.delete_documents("wren", [doc_id])
    with pytest.raises(DocumentNotFound):
        Pipeline(writer).ingest_documents([doc], expect_ids={doc.source: doc_id})
    assert "late-note" not in writer.known(["late-note"])
    service.close()


def test_searches_and_in_place_index_updates_can_run_together(fake_home):
    """The API's ingest worker edits an index in place while request threads search it."""
    import threading

    from ingest.loaders import document_from_text
    from ingest.pipeline import Pipeline

    settings = Settings.from_env()
    service = Service(settings)
    coll = service.get_collection("wren")
    errors: list[BaseException] = []
    stop = threading.Event()

    def search_loop() -> None:
        try:
            while not stop.is_set():
                service.search(coll, "solar panels on the school", k=10, mode="dense")
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=search_loop) for _ in range(3)]
    for t in threads:
        t.start()
    pipeline = Pipeline(service.writer(coll))
    for i in range(15):
        pipeline.ingest_documents([document_from_text(f"note-{i % 5}", f"Revision {i} of note {i % 5} about panels.")],
                                  save=False)
    stop.set()
    for t in threads:
        t.join()
    assert errors == []
    pipeline.writer.save_index()
    store = Store(settings.database_path)
    ids, _, _ = store.vectors(coll.id)
    assert sorted(VectorIndex.load(IndexCache(store, settings.index_dir).path(coll.id)).ids().tolist()) == sorted(ids.tolist())
    store.close()
    service.close()


def test_a_restart_fails_only_the_uploads_of_servers_that_are_gone(fake_backend_home):
    from ingest.queue import INTERRUPTED, IngestQueue

    settings = Settings.from_env()
    service = Service(settings)
    store = Store(settings.database)
    coll = service.get_collection("wren")
    alive = IngestQueue(service, heartbeat_s=3600)

    def queued(source: str, owner: str | None) -> int:
        return store.queue_document(coll.id, source=source, content_hash="h", title=None,
                                    text_="Some text.", metadata={}, owner=owner)

    mine = queued("alive-upload", alive.worker_id)
    orphan = queued("dead-upload", "worker-of-a-crashed-server")
    legacy = queued("ownerless-upload", None)
    newcomer = IngestQueue(service, heartbeat_s=3600)  # another server starting on the same database
    status = lambda i: service.get_document("wren", i, with_text=False)  # noqa: E731
    assert status(mine).status == "queued"
    assert status(orphan).status == "failed" and status(orphan).error == INTERRUPTED
    assert status(legacy).status == "failed"
    # The first server stops beating (its process died): the next sweep fails its uploads.
    with store.write() as s:
        s.execute(text("UPDATE ingest_workers SET heartbeat_at = 0 WHERE id = :w"), {"w": alive.worker_id})
    newcomer._beat()
    assert status(mine).status == "failed"
    newcomer.shutdown()
    alive._stop.set()
    store.close()
    service.close()


def test_the_uploads_of_a_stopped_server_are_finished_by_another(fake_backend_home):
    """A server died with uploads queued: the next server to look ingests each from its stored
    text, once, or fails it when the stored text is not what was uploaded (a replacement, whose
    previous version stays ready)."""
    from ingest.loaders import document_from_text
    from ingest.pipeline import document_hash
    from ingest.queue import INTERRUPTED, IngestQueue

    settings = Settings.from_env()
    service = Service(settings)
    coll = service.get_collection("wren")
    writer = service.writer(coll)
    new = document_from_text("new-upload", "Heat pumps move warmth.\n\nThey run on the array's power.",
                             title="Heat pumps", metadata={"lang": "en"})
    new_id = writer.queue_document(source=new.source, content_hash=document_hash(new), title=new.title,
                                   text=new.text, metadata=new.metadata, owner="worker-of-a-crashed-server")
    stored = service.list_documents("wren", limit=1)[0]
    replacement = document_from_text(stored.source, "A replacement the dead server never stored.")
    replaced_id = writer.queue_document(source=stored.source, content_hash=document_hash(replacement),
                                        title=None, text=replacement.text, metadata={},
                                        owner="worker-of-a-crashed-server")
    assert replaced_id == stored.id
    survivor = IngestQueue(service, heartbeat_s=3600)  # claims both at its first beat
    survivor.shutdown()  # waits for the ingest it started
    done = service.get_document("wren", new_id)
    assert (done.status, done.text, done.title, done.metadata) == ("ready", new.text, "Heat pumps", new.metadata)
    assert done.chunks >= 1
    hits = service.search("wren", "heat pumps warmth", mode="lexical", k=1000)
    assert sum(h.document_id == new_id for h in hits) == done.chunks  # ingested once: no duplicate chunks
    kept = service.get_document("wren", replaced_id, with_text=False)
    # The replacement failed; the last good version stays ready and searchable, the error noted.
    assert (kept.status, kept.error) == ("ready", INTERRUPTED)
    assert kept.chunks == stored.chunks
    service.close()
