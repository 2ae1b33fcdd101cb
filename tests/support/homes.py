"""Data folders with the sample corpus already ingested, for tests that need a populated service."""

from __future__ import annotations

import threading
from pathlib import Path

from rag.config import Settings
from support.paths import CORPUS

SAMPLE_COLLECTION = "wren"
SAMPLE_DOCUMENTS = 17


def seed(home: Path, embedder: str, database_url: str | None = None) -> Path:
    """Ingest the sample corpus into `home` (or the database at `database_url`) as collection
    `wren`, embedded by `embedder`."""
    from ingest.pipeline import Pipeline
    from rag.service import Service

    with Service(Settings(home=home, embedder=embedder, database_url=database_url)) as service:
        collection = service.create_collection(SAMPLE_COLLECTION)
        summary = Pipeline(service.writer(collection)).ingest_paths([CORPUS])
    # The lexical index commits on its own thread; copies of this folder must not catch it midway.
    for thread in threading.enumerate():
        if thread.name == "lexical-commit":
            thread.join()
    assert not summary.failed and len(summary.added) == SAMPLE_DOCUMENTS, summary
    # The lexical index's last commit runs on its own thread: done before anyone copies the folder.
    for thread in threading.enumerate():
        if thread.name == "lexical-commit":
            thread.join()
    return home
