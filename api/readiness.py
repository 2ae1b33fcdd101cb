"""Serve at once, load in the background: `/health/live` and `/health/ready`.

Loading the local model and every collection's indexes takes seconds to minutes. The server accepts
connections before that (a request that needs a part not loaded yet loads it itself, as it always
could), and says how far loading got: `/health/live` answers 200 as soon as the process serves,
`/health/ready` 503 naming what is still loading, then 200. A load balancer or `rag serve`'s tests
wait for ready; a liveness probe never kills a server that is only busy loading.
"""

from __future__ import annotations

import logging
import threading
from typing import Literal

from litestar import get
from litestar.datastructures import State
from msgspec import Struct

from api.openapi import documented
from rag.errors import NotReady
from rag.service import Service

__all__ = ["Live", "Loader", "Ready", "health_live", "health_ready"]

log = logging.getLogger(__name__)


class Live(Struct, kw_only=True):
    """`GET /health/live`: the process serves."""

    status: Literal["ok"] = "ok"


class Ready(Struct, kw_only=True):
    """`GET /health/ready`: the model and every index are loaded (else a 503 `not_ready` error
    whose `loading` says what is left)."""

    status: Literal["ready"] = "ready"


class Loader:
    """Loads the service's model and indexes on a background thread, and says what is left."""

    def __init__(self, service: Service):
        self._service = service
        self._lock = threading.Lock()
        self._left: dict[str, str] = {"model": "the local embedding model", "indexes": "collection indexes"}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="warm-up", daemon=True)

    def start(self) -> Loader:
        self._thread.start()
        return self

    def ready(self) -> bool:
        return not self.loading()

    def loading(self) -> list[str]:
        with self._lock:
            return list(self._left.values())

    def _set(self, part: str, what: str | None) -> None:
        with self._lock:
            if what is None:
                self._left.pop(part, None)
            else:
                self._left[part] = what

    def _run(self) -> None:
        # The model and the indexes load at once, on two threads: both spend their time outside
        # the interpreter (onnxruntime building its session, FAISS reading a graph and vectors),
        # so a server is ready after the slower of the two, not their sum.
        model = threading.Thread(target=self._load_model, name="warm-up-model", daemon=True)
        model.start()
        try:
            self._load_indexes()
        finally:
            model.join()
        if self.ready():
            log.info("ready: the model and every collection's indexes are loaded")

    def _load_model(self) -> None:
        try:
            self._service.warm_model()
        except Exception:
            # Queries will fail with the model's own error; a readiness that never comes says so too.
            log.exception("could not load the local embedding model")
            self._set("model", "the local embedding model (failed: see the log)")
        else:
            self._set("model", None)

    def _load_indexes(self) -> None:
        collections = self._service.list_collections()
        for i, collection in enumerate(collections):
            if self._stop.is_set():
                return
            # Counts, not names: the readiness answer is public.
            self._set("indexes", f"collection indexes ({i} of {len(collections)} loaded)")
            self._service.load_indexes(collection)
        # On this thread, whose work ends well before the model's: building the token encoding
        # holds the GIL for half a second, and a first search would wait for it otherwise.
        try:
            self._service.warm_query_checks()
        except Exception:  # the first search builds it then; readiness must not wait forever
            log.exception("could not build the query checks' token encoding")
        self._set("indexes", None)

    def stop(self) -> None:
        """Stop between collections and wait for the thread (the service closes after this)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()


@get("/health/live", opt={"public": True}, operation_id="healthLive", summary="Liveness: the process serves",
     tags=["health"], sync_to_thread=False, **documented(public=True))
def health_live() -> Live:
    return Live()


@get("/health/ready", opt={"public": True}, operation_id="healthReady",
     summary="Readiness: the model and every index are loaded (503 `not_ready` while loading)", tags=["health"],
     sync_to_thread=False, **documented(503, public=True))
def health_ready(state: State) -> Ready:
    loader: Loader | None = state.get("loader")
    left = loader.loading() if loader is not None else []
    if left:
        raise NotReady(left)
    return Ready()
