"""Data folders with the sample corpus already ingested, for tests that need a populated service."""

from __future__ import annotations

import threading
from pathlib import Path

from rag.config import Settings
from support.paths import CORPUS

SAMPLE_COLLECTION = "wren"
SAMPLE_DOCUMENTS = 17


def seed(home: Path, embedder: str) -> Path:
    """Ingest the sample corpus into `home` as collection `wren`, embedded by `embedder`."""
    from ingest.pipeline import Pipeline
    from rag.service import Service

    with Service(Settings(home=home, embedder=embedder)) as service:
        collection = service.create_collection(SAMPLE_COLLECTION)
        summary = Pipeline(service.writer(collection)).ingest_paths([CORPUS])
    # The lexical index commits on its own thread; copies of this folder must not catch it midway.
    for thread in threading.enumerate():
        if thread.name == "lexical-commit":
            thread.join()
    assert not summary.failed and len(summary.added) == SAMPLE_DOCUMENTS, summary
    return home
