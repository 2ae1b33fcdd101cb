"""The parts a front end needs, opened together: store, indexes, retriever.

The command line and the HTTP API both hold one `Service` and call the same functions through it.
"""

from __future__ import annotations

from rag.chunking import DEFAULT_CHUNK_OVERLAP, DEFAULT_CHUNK_SIZE
from rag.config import Settings
from rag.embeddings import get_embedder
from rag.errors import CollectionNotFound, InvalidInput
from rag.index import IndexCache
from rag.retrieval import Retriever
from rag.store import Collection, Store


class Service:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.store = Store(settings.database_path)
        self.indexes = IndexCache(self.store, settings.index_dir)
        self.retriever = Retriever(self.store, self.indexes, settings)

    def close(self) -> None:
        self.store.close()

    def create_collection(self, name: str, *, embedder: str | None = None, chunk_size: int | None = None,
                          chunk_overlap: int | None = None) -> Collection:
        kind = embedder or self.settings.embedder
        if kind not in ("local", "openai"):
            raise InvalidInput(f"embedder must be local or openai, got {kind!r}")
        spec = get_embedder(kind, self.settings).spec
        return self.store.create_collection(
            name, spec,
            DEFAULT_CHUNK_SIZE if chunk_size is None else chunk_size,
            DEFAULT_CHUNK_OVERLAP if chunk_overlap is None else chunk_overlap,
        )

    def open_collection(self, name: str, *, create: bool = False, embedder: str | None = None,
                        chunk_size: int | None = None, chunk_overlap: int | None = None) -> Collection:
        """The named collection; with `create`, made on first use. Options given for an existing
        collection must match what it was built with: its vectors and chunks depend on them."""
        try:
            collection = self.store.get_collection(name)
        except CollectionNotFound:
            if not create:
                raise
            return self.create_collection(name, embedder=embedder, chunk_size=chunk_size,
                                          chunk_overlap=chunk_overlap)
        if embedder is not None and embedder != collection.embedder.kind:
            raise InvalidInput(
                f"collection {name!r} uses the {collection.embedder.kind} embedder "
                f"({collection.embedder.model_id}); it cannot be ingested with {embedder}")
        if chunk_size is not None and chunk_size != collection.chunk_size:
            raise InvalidInput(f"collection {name!r} was chunked at {collection.chunk_size} tokens, not {chunk_size}")
        if chunk_overlap is not None and chunk_overlap != collection.chunk_overlap:
            raise InvalidInput(
                f"collection {name!r} was chunked with overlap {collection.chunk_overlap}, not {chunk_overlap}")
        return collection

    def delete_collection(self, name: str) -> Collection:
        gone = self.store.delete_collection(name)
        self.indexes.forget(gone.id)
        return gone
