"""The start-up loader loads the model and the indexes at once (issue #9: ready within 10 s at 1M
chunks): each waits here until the other has begun, which a loader doing one after the other never
lets happen."""

from __future__ import annotations

import threading
import time
from typing import cast

from api.readiness import Loader
from rag.service import Service


class TwoParts:
    """A service whose model and index loads each wait for the other to have started."""

    def __init__(self) -> None:
        self.model_started = threading.Event()
        self.indexes_started = threading.Event()
        self.overlapped: list[str] = []

    def warm_model(self) -> None:
        self.model_started.set()
        if self.indexes_started.wait(5):
            self.overlapped.append("model")

    def list_collections(self) -> list[str]:
        return ["a", "b"]

    def warm_query_checks(self) -> None:
        pass

    def load_indexes(self, collection: str) -> bool:
        self.indexes_started.set()
        if self.model_started.wait(5):
            self.overlapped.append(collection)
        return True


def test_the_model_and_the_indexes_load_at_the_same_time() -> None:
    service = TwoParts()
    loader = Loader(cast(Service, service)).start()
    deadline = time.monotonic() + 20
    while not loader.ready() and time.monotonic() < deadline:
        time.sleep(0.01)
    loader.stop()
    assert loader.ready()
    assert sorted(service.overlapped) == ["a", "b", "model"]


def test_a_failed_model_leaves_the_server_unready_and_the_indexes_loaded() -> None:
    class NoModel(TwoParts):
        def warm_model(self) -> None:
            self.model_started.set()
            raise RuntimeError("no model here")

    service = NoModel()
    loader = Loader(cast(Service, service)).start()
    deadline = time.monotonic() + 20
    while len(loader.loading()) != 1 or "failed" not in loader.loading()[0]:
        assert time.monotonic() < deadline, loader.loading()
        time.sleep(0.01)
    loader.stop()
    assert loader.loading() == ["the local embedding model (failed: see the log)"]


def test_warming_the_query_checks_builds_the_token_encoding(fake_home, monkeypatch) -> None:
    from rag import tokens
    from rag.config import Settings

    monkeypatch.setattr(tokens, "_built", {})
    with Service(Settings.from_env()) as service:
        service.warm_query_checks()
    assert tokens.DEFAULT_ENCODING in tokens._built
