"""Recovery from faults: a crashed server's uploads, failed re-uploads, and command-line runs that
race each other on one collection. Each ends in a clear state or a clear error, never a traceback.

Before: queued uploads of a killed server stayed `queued` for about 50 s (until its heartbeat went
stale); a re-upload that failed turned a ready document `failed` while its old chunks stayed
searchable; deleting a collection during an ingest raised an `IntegrityError`; of three first
ingests into a new collection started together, two failed with "already exists".
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from ingest.loaders import document_from_text
from ingest.pipeline import Pipeline, document_hash
from ingest.queue import INTERRUPTED, IngestQueue
from rag.config import Settings
from rag.errors import CollectionNotFound, UpstreamUnavailable
from rag.service import Service
from rag.store import Store

SETTINGS = {"embedder": "fake"}


@pytest.fixture
def settings(fake_home: Path) -> Settings:
    return Settings(home=fake_home, embedder="fake")


def _ready_document(service: Service, source: str, body: str) -> int:
    writer = service.writer(service.get_collection("wren"))
    summary = Pipeline(writer).ingest_documents([document_from_text(source, body)])
    assert summary.added == [source]
    return writer.known([source])[source].id


def _crashed_server(settings: Settings, store: Store, worker_id: str) -> None:
    """A server that beat a moment ago and then died: its row is fresh, its lock file free."""
    (settings.home / "workers").mkdir(exist_ok=True)
    (settings.home / "workers" / f"{worker_id}.lock").touch()
    with store.write() as s:
        s.execute(text("INSERT INTO ingest_workers(id, heartbeat_at) VALUES (:w, :t)"),
                  {"w": worker_id, "t": time.time()})


def test_a_restart_takes_over_the_uploads_of_a_killed_server_at_once(settings) -> None:
    """Seen dead by its free lock (no minute of waiting for its heartbeat): an upload whose stored
    text is what was sent is finished here; one that cannot be (its stored text is not the upload:
    a replacement, or here a hash that does not match) fails, and a re-upload's previous version
    stays ready and searchable."""
    service, store = Service(settings), Store(settings.database_path)
    try:
        coll = service.get_collection("wren")
        ready = _ready_document(service, "roof-note", "The roof holds forty solar panels.")
        _crashed_server(settings, store, "deadbeef")
        sent = document_from_text("otter-note", "Otters fish below the weir of the mill race.")
        finishable = store.queue_document(coll.id, source=sent.source, content_hash=document_hash(sent),
                                          title=sent.title, text_=sent.text, metadata=sent.metadata,
                                          owner="deadbeef")
        new = store.queue_document(coll.id, source="new-note", content_hash="h1", title=None,
                                   text_="A new note.", metadata={}, owner="deadbeef")
        again = store.queue_document(coll.id, source="roof-note", content_hash="h2", title=None,
                                     text_="The roof holds fifty panels now.", metadata={}, owner="deadbeef")
        assert again == ready
        queue = IngestQueue(service, heartbeat_s=3600)  # the next server starts
        try:
            status = lambda i: service.get_document("wren", i, with_text=False)  # noqa: E731
            assert (status(new).status, status(new).error) == ("failed", INTERRUPTED)
            # The re-upload failed; the version before it stays ready and searchable.
            assert (status(ready).status, status(ready).error) == ("ready", INTERRUPTED)
            # ... under no hash: the same upload sent again is not taken for unchanged.
            assert status(ready).content_hash == ""
            hits = service.search("wren", "forty solar panels roof", k=3, mode="lexical")
            assert hits[0].document_id == ready and "forty" in hits[0].text
            assert not (settings.home / "workers" / "deadbeef.lock").exists()
            deadline = time.monotonic() + 30
            while status(finishable).status != "ready" and time.monotonic() < deadline:
                time.sleep(0.05)
            assert status(finishable).status == "ready"
            # Ready is committed; the lexical index follows the change log a moment later.
            top = lambda: [h.document_id for h in service.search("wren", "otters weir mill race", k=1,  # noqa: E731
                                                                 mode="lexical")]
            while top() != [finishable] and time.monotonic() < deadline:
                time.sleep(0.05)
            assert top() == [finishable]
        finally:
            queue.shutdown()
    finally:
        store.close()
        service.close()


def test_a_live_server_in_another_process_keeps_its_uploads(settings) -> None:
    first, second = Service(settings), Service(settings)  # two servers: two engines, two lock holders
    try:
        alive = IngestQueue(first, heartbeat_s=3600)
        coll = first.get_collection("wren")
        mine = first.writer(coll).queue_document(source="in-flight", content_hash="h", title=None,
                                                 text="Being worked on.", metadata={}, owner=alive.worker_id)
        newcomer = IngestQueue(second, heartbeat_s=3600)
        assert second.get_document("wren", mine, with_text=False).status == "queued"
        newcomer.shutdown()
        alive.shutdown()
    finally:
        first.close()
        second.close()


def test_a_failed_re_upload_leaves_the_previous_version_ready(settings, monkeypatch) -> None:
    service = Service(settings)
    queue = IngestQueue(service, heartbeat_s=3600)
    try:
        ready = _ready_document(service, "roof-note", "The roof holds forty solar panels.")

        def upstream_down(*args: object, **kwargs: object) -> None:
            raise UpstreamUnavailable("the embedder is down")

        monkeypatch.setattr(Pipeline, "ingest_documents", upstream_down)
        changed = document_from_text("roof-note", "The roof holds fifty panels now.")
        [accepted] = queue.submit(service.get_collection("wren"), [changed], wait=True)
        assert accepted.status == "failed" and accepted.error == "the embedder is down"
        stored = service.get_document("wren", ready)
        assert (stored.status, stored.error) == ("ready", "the embedder is down")
        assert "forty" in (stored.text or "")
        assert service.search("wren", "forty solar panels", k=1, mode="lexical")[0].document_id == ready
        # A new document that fails has no previous version: it is `failed`.
        [fresh] = queue.submit(service.get_collection("wren"), [document_from_text("n", "New.")], wait=True)
        assert service.get_document("wren", fresh.id, with_text=False).status == "failed"
    finally:
        queue.shutdown()
        service.close()


def test_deleting_a_collection_during_an_ingest_is_a_clear_error(settings, tmp_path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i in range(400):
        (corpus / f"n{i}.md").write_text(f"# Note {i}\n\n" + f"Some words about item {i}. " * 20)
    ingesting, deleting = Service(settings), Service(settings)  # as two processes would
    try:
        collection = ingesting.open_collection("fresh", create=True)
        deleted = []

        def delete_midway(progress) -> None:  # noqa: ANN001
            if progress.files_done == 20 and not deleted:
                deleting.delete_collection("fresh")
                deleted.append(True)

        with pytest.raises(CollectionNotFound, match="the collection was deleted while documents were being "
                                                     "written into it"):
            Pipeline(ingesting.writer(collection), on_progress=delete_midway).ingest_paths([corpus])
        assert deleted
        with pytest.raises(CollectionNotFound):
            deleting.get_collection("fresh")
    finally:
        ingesting.close()
        deleting.close()


def test_three_first_ingests_into_a_new_collection_all_succeed(settings, tmp_path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i in range(5):
        (corpus / f"n{i}.md").write_text(f"# Note {i}\n\nSome words about item {i}.")
    services = [Service(settings) for _ in range(3)]
    start = threading.Barrier(3)
    results: list[object] = [None] * 3

    def run(i: int) -> None:
        try:
            start.wait()
            collection = services[i].open_collection("together", create=True)
            results[i] = Pipeline(services[i].writer(collection)).ingest_paths([corpus])
        except Exception as e:  # noqa: BLE001  (reported below)
            results[i] = e

    threads = [threading.Thread(target=run, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert not [r for r in results if isinstance(r, Exception)], results
        assert services[0].get_collection("together", counts=True).documents == 5
    finally:
        for s in services:
            s.close()
