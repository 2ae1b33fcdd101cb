"""Several `rag serve` processes on one PostgreSQL: what one writes the other finds at once, and
the uploads of a process killed mid-ingest are finished by the other, once.

Two real servers (local model) on one database of the suite's own PostgreSQL; their upload
workers beat every half second and count a worker silent for three seconds as gone, so a kill
is noticed in seconds rather than the default minute.
"""

from __future__ import annotations

import shutil
import signal
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text
from support.serve import ServeProcess

pytestmark = pytest.mark.slow

WORKER_ENV = {"RAG_WORKER_HEARTBEAT_S": "0.5", "RAG_WORKER_STALE_S": "3"}


@pytest.fixture
def servers(pg_url: str, seeded_home: Path, tmp_path: Path):
    """Servers A and B on one PostgreSQL database (their RAG_HOME holds only the built model)."""
    home = tmp_path / "home"
    home.mkdir()
    if (seeded_home / "models").is_dir():  # the model built once for the session: no rebuild per server
        shutil.copytree(seeded_home / "models", home / "models")
    env = {"RAG_DATABASE_URL": pg_url, **WORKER_ENV}
    a = ServeProcess(home, tmp_path / "a.log", **env)
    b = ServeProcess(home, tmp_path / "b.log", **env)
    try:
        yield a.wait_ready(), b.wait_ready()
    finally:
        a.stop()
        b.stop()


def test_a_document_uploaded_through_one_server_is_found_through_the_other_at_once(servers) -> None:
    a, b = servers
    with httpx.Client(timeout=60) as http:
        assert http.post(f"{a.url}/collections", json={"name": "shared"}).status_code == 201
        body = {"documents": [{"source": "otters", "text": "Sea otters hold hands while they sleep so they "
                                                            "do not drift apart on the kelp beds."}]}
        assert http.post(f"{a.url}/collections/shared/documents?wait=true", json=body).status_code == 201
        uploaded = time.monotonic()
        found: list[str] = []
        while time.monotonic() - uploaded < 1.0 and not found:
            hits = http.post(f"{b.url}/collections/shared/search",
                             json={"query": "otters sleeping on kelp", "k": 3}).json()["hits"]
            found = [h["source"] for h in hits]
        assert found and found[0] == "otters", f"B did not find A's upload within 1 s: {found}"
        # and the other way round, for dense and lexical search alike
        body = {"documents": [{"source": "owls", "text": "Barn owls swallow their prey whole and cough up pellets."}]}
        assert http.post(f"{b.url}/collections/shared/documents?wait=true", json=body).status_code == 201
        for mode in ("dense", "lexical"):
            hits = http.post(f"{a.url}/collections/shared/search",
                             json={"query": "owl pellets", "k": 1, "mode": mode}).json()["hits"]
            assert hits[0]["source"] == "owls", mode


def test_an_upload_of_a_server_killed_mid_ingest_is_finished_by_the_other_once(servers, pg_url: str) -> None:
    a, b = servers
    # Long enough that embedding it takes seconds: the kill lands while A is ingesting it.
    text_ = "\n\n".join(f"Paragraph {i} of the survey: the tide pools at station {i} held {i % 7} crabs, "
                        f"{i % 5} anemones and a film of green algae that thickened through the summer."
                        for i in range(400))
    with httpx.Client(timeout=60) as http:
        assert http.post(f"{a.url}/collections", json={"name": "survey"}).status_code == 201
        accepted = http.post(f"{a.url}/collections/survey/documents",
                             json={"documents": [{"source": "tide-pools", "text": text_}]})
        assert accepted.status_code == 202
        doc_id = accepted.json()["data"][0]["id"]

        def status() -> str:
            return http.get(f"{b.url}/collections/survey/documents/{doc_id}").json()["status"]

        deadline = time.monotonic() + 30
        while status() != "processing" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert status() == "processing"
        time.sleep(0.5)  # well into the embedding
        a.process.send_signal(signal.SIGKILL)
        a.process.wait(timeout=10)
        assert status() in ("queued", "processing"), "A finished before it was killed: make the document longer"

        deadline = time.monotonic() + 180
        while status() not in ("ready", "failed") and time.monotonic() < deadline:
            time.sleep(0.2)
        document = http.get(f"{b.url}/collections/survey/documents/{doc_id}").json()
        assert document["status"] == "ready", (document["status"], document.get("error"), b.output())
        assert document["text"] == text_
        assert "finishing tide-pools" in b.log.read_text()  # B did it, not a ghost of A
        hits = http.post(f"{b.url}/collections/survey/search",
                         json={"query": "tide pools at station 417", "k": 1, "mode": "lexical"}).json()["hits"]
        assert hits and hits[0]["document_id"] == doc_id

    engine = create_engine(pg_url)
    try:
        with engine.connect() as conn:
            sources = conn.execute(text("SELECT count(*) FROM documents WHERE source = 'tide-pools'")).scalar()
            chunks, ordinals, top = conn.execute(text(
                "SELECT count(*), count(DISTINCT ordinal), max(ordinal) + 1 FROM chunks WHERE document_id = :d"),
                {"d": doc_id}).one()
    finally:
        engine.dispose()
    assert sources == 1  # no duplicate document
    assert chunks == ordinals == top == document["chunks"] > 50  # every chunk once, none missing
