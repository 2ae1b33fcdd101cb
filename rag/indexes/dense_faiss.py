"""The dense index on FAISS: derived from the store, stamped with the change number it reflects.

Cosine similarity is the inner product of L2-normalised float32 vectors, so each collection has an
exact `IndexIDMap2(IndexFlatIP)` whose ids are chunk ids. The file on disk carries its stamp in a
small header and is replaced by write-then-rename, so a reader never sees half a file; when the
stamp is behind the store, or the file is missing or unreadable, the index is rebuilt from SQLite.

`IndexCache` is the `rag.indexes.DenseIndex` the service uses; `VectorIndex` is one collection's.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path

import faiss
import numpy as np

from rag.records import ChunkChange, Collection
from rag.store import Store

__all__ = ["IndexCache", "VectorIndex"]

log = logging.getLogger(__name__)

_MAGIC = b"RAGFAISS1\n"


class VectorIndex:
    """Exact inner-product search over (chunk id, vector) pairs."""

    def __init__(self, dim: int, stamp: int = -1, index: faiss.Index | None = None):
        self.dim = dim
        self.stamp = stamp
        self.index = index if index is not None else faiss.IndexIDMap2(faiss.IndexFlatIP(dim))

    def __len__(self) -> int:
        return self.index.ntotal

    def ids(self) -> np.ndarray:
        return faiss.vector_to_array(self.index.id_map).astype(np.int64)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape != (len(ids), self.dim):
            raise ValueError(f"vectors have shape {vectors.shape}, expected ({len(ids)}, {self.dim})")
        if len(ids):
            self.index.add_with_ids(vectors, ids)

    def remove(self, ids: list[int] | np.ndarray) -> None:
        if len(ids):
            self.index.remove_ids(np.ascontiguousarray(ids, dtype=np.int64))

    def search(self, query: np.ndarray, k: int, allowed: np.ndarray | None = None) -> list[tuple[int, float]]:
        """Top-k (chunk id, cosine) for one normalised query; `allowed` restricts the ids searched."""
        query = np.ascontiguousarray(query, dtype=np.float32).reshape(1, -1)
        if query.shape[1] != self.dim:
            raise ValueError(f"query has {query.shape[1]} dimensions, the index {self.dim}")
        k = min(k, self.index.ntotal)
        if k <= 0:
            return []
        params = None
        if allowed is not None:
            if len(allowed) == 0:
                return []
            params = faiss.SearchParameters(sel=faiss.IDSelectorBatch(np.ascontiguousarray(allowed, dtype=np.int64)))
        scores, ids = self.index.search(query, k, params=params)
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0]

    def save(self, path: Path) -> None:
        """Write atomically: a crash leaves the previous file or the new one, never a torn one."""
        path.parent.mkdir(parents=True, exist_ok=True)
        header = json.dumps({"stamp": self.stamp, "dim": self.dim}).encode() + b"\n"
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        with open(tmp, "wb") as f:
            f.write(_MAGIC)
            f.write(header)
            f.write(faiss.serialize_index(self.index).tobytes())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> VectorIndex:
        """Read a saved index; raises ValueError if the file is not one of ours or is damaged."""
        data = path.read_bytes()
        if not data.startswith(_MAGIC):
            raise ValueError(f"{path} is not a saved index")
        end = data.index(b"\n", len(_MAGIC))
        header = json.loads(data[len(_MAGIC):end])
        index = faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8, offset=end + 1).copy())
        if index.d != header["dim"]:
            raise ValueError(f"{path}: header says {header['dim']} dimensions, the index has {index.d}")
        return cls(header["dim"], header["stamp"], index)


class IndexCache:
    """The indexes of one process, kept current with the store.

    Several processes may write the store (an API and a bulk ingest); before each search the
    caller asks `current()`, which costs one indexed SELECT when nothing changed.
    """

    def __init__(self, store: Store, index_dir: Path):
        self.store = store
        self.index_dir = Path(index_dir)
        self._indexes: dict[int, VectorIndex] = {}
        self._locks: dict[int, threading.Lock] = {}
        self._guard = threading.Lock()

    @property
    def loaded(self) -> int:
        """How many collections' indexes this process holds in memory."""
        return len(self._indexes)

    def path(self, collection_id: int) -> Path:
        return self.index_dir / f"collection-{collection_id}.faiss"

    def _lock(self, collection_id: int) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(collection_id, threading.Lock())

    def current(self, collection: Collection) -> VectorIndex:
        """The collection's index at the store's present change number."""
        with self._lock(collection.id):
            return self._current(collection)

    def load(self, collection: Collection) -> int:
        """Bring the collection's index up to the store now; returns how many vectors it holds."""
        return len(self.current(collection))

    def search(self, collection: Collection, vector: np.ndarray, k: int,
               allowed: np.ndarray | None = None) -> list[tuple[int, float]]:
        """Search the current index. FAISS allows no write during a search, and this process's
        ingest worker updates indexes in place, so a search holds the collection's lock too."""
        with self._lock(collection.id):
            return self._current(collection).search(vector, k, allowed)

    def _current(self, collection: Collection) -> VectorIndex:
        cid = collection.id
        stamp = self.store.change_number(cid)
        index = self._indexes.get(cid)
        if index is not None and index.stamp == stamp:
            return index
        index = self._load_if_current(cid, stamp) or self._rebuild(collection)
        self._indexes[cid] = index
        return index

    def _load_if_current(self, cid: int, stamp: int) -> VectorIndex | None:
        path = self.path(cid)
        if not path.exists():
            return None
        try:
            index = VectorIndex.load(path)
        except Exception as e:  # unreadable: rebuilt from the store, which is the truth
            log.warning("index %s unreadable (%s); rebuilding from the store", path, e)
            return None
        return index if index.stamp == stamp else None

    def _rebuild(self, collection: Collection) -> VectorIndex:
        ids, vectors, stamp = self.store.vectors(collection.id)
        index = VectorIndex(collection.embedder.dim, stamp)
        index.add(ids, vectors)
        try:
            index.save(self.path(collection.id))
        except OSError as e:  # a read-only data folder still serves searches
            log.warning("could not save index for %s: %s", collection.name, e)
        return index

    def apply(self, collection: Collection, change: ChunkChange, added_vectors: np.ndarray | None = None) -> None:
        """Follow one committed change in memory, if it is the next one; otherwise drop the index
        so that `current()` rebuilds it (another process committed in between)."""
        removed, added, stamp = change.removed_chunk_ids, change.added_chunk_ids, change.change_number
        cid = collection.id
        with self._lock(cid):
            index = self._indexes.get(cid)
            if index is None:
                return
            if index.stamp + 1 != stamp and not (index.stamp == stamp and not removed and not added):
                del self._indexes[cid]
                return
            index.remove(removed)
            if added:
                index.add(np.asarray(added, dtype=np.int64), added_vectors)
            index.stamp = stamp

    def save(self, collection: Collection) -> None:
        """Persist the in-memory index (after a bulk ingest), if it is current."""
        with self._lock(collection.id):
            index = self._indexes.get(collection.id)
            if index is not None and index.stamp == self.store.change_number(collection.id):
                index.save(self.path(collection.id))

    def forget(self, collection_id: int) -> None:
        """Drop the collection's index from memory and disk."""
        with self._lock(collection_id):
            self._indexes.pop(collection_id, None)
        self.path(collection_id).unlink(missing_ok=True)
