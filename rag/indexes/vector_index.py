"""One collection's vectors in FAISS: exact (flat) or approximate (HNSW), with tombstones.

Cosine similarity is the inner product of L2-normalised float32 vectors. Rows are numbered in the
order they were added (FAISS's own ids); `labels` maps each row to its chunk id. Deleting a chunk
marks its row dead in a bitmap (a tombstone) and searches skip dead rows through an `IDSelector`,
so a delete takes effect at once and costs microseconds on any kind of index: HNSW cannot remove
a node, and removing a row from a flat index moves every row after it. Dead rows are dropped by a
rebuild (`rag.indexes.dense_faiss` compacts in the background).

Not thread-safe: the caller holds `rag.indexes.rwlock.ReadWriteLock` (searches shared, writes alone).

On disk, one file: a magic line, a JSON header line (stamp, dim, kind, rows, ...), the labels, the
tombstone bitmap, then the FAISS index as `faiss.write_index` writes it. Saving and loading stream
the FAISS part through a callback writer and reader, so neither holds a second copy of the vectors
in memory. Loading maps the file instead (`IO_FLAG_MMAP_IFC` through a `ZeroCopyIOReader`): the
vectors and the HNSW graph are read where they lie, so a server is ready in a fraction of a second
instead of copying 1.8 GB at 1M vectors (2.2 s). A mapped FAISS index cannot grow (an add aborts
the process in `MaybeOwnedVector::resize`), so the first add reads the index into memory from the
same file first, once (`_own`). (`IO_FLAG_MMAP` alone maps only IVF lists.)
"""

from __future__ import annotations

import json
import math
import mmap
import os
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Literal

import faiss
import numpy as np

from rag.indexes.faiss_threads import one_thread

__all__ = ["HNSW_EF_SEARCH", "HNSW_M", "Kind", "VectorIndex", "read_stamp"]

Kind = Literal["flat", "hnsw"]

_MAGIC = b"RAGFAISS2\n"

HNSW_M = 32
"""Graph degree: the degree used for the 1M measurements of issue #9 (0.23 ms a query)."""
HNSW_EF_CONSTRUCTION = 40
"""FAISS's default; build time grows about linearly with it."""
HNSW_EF_SEARCH = 512
"""Candidates kept while searching: recall@10 against exact 0.970 at 1M vectors resampled from
SciFact's MiniLM vectors (0.958 at 384, 0.944 at 256), 1.3 ms a query (README, "Dense search")."""
MAX_EF_SEARCH = 4096
"""A filtered search widens its candidate list by 1 / (the share of rows it may return), up to this
(at 1M, a 2% filter: recall@10 0.987 with 4096, 0.938 with 1024)."""
EXACT_FILTER_SHARE = 0.02
"""A filter keeping fewer than this share of an HNSW index's rows is answered exactly, reading only
those rows' vectors: a graph walk would spend most of its steps on rows it must skip. Above it the
walk is widened instead (measured at 1M: see the README's "Dense search")."""


def _new_faiss(kind: Kind, dim: int) -> Any:
    if kind == "flat":
        return faiss.IndexFlatIP(dim)
    if kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        return index
    raise ValueError(f"unknown index kind {kind!r}")


class VectorIndex:
    """Inner-product search over (chunk id, vector) pairs, rows deleted by tombstone."""

    def __init__(self, dim: int, stamp: int = -1, *, kind: Kind = "flat", ef_search: int = HNSW_EF_SEARCH):
        self.dim = dim
        self.stamp = stamp
        """The store's change number this index reflects."""
        self.kind: Kind = kind
        self.ef_search = ef_search
        self.index: Any = _new_faiss(kind, dim)  # IndexFlatIP or IndexHNSWFlat (FAISS's stubs know neither)
        self.rows = 0
        """Rows in the FAISS index, dead ones included."""
        self.dead = 0
        """Rows deleted since the last rebuild."""
        self._labels = np.empty(0, dtype=np.int64)  # row -> chunk id; capacity grows by doubling
        self._dead_bits = np.empty(0, dtype=np.uint8)  # bit r (little-endian in each byte): row r is dead
        self._order: np.ndarray | None = None  # argsort of the labels, when they are not increasing
        self._increasing = True  # chunk ids only grow, so rows are normally in id order
        self._mapped: _Mapping | None = None
        """The file the FAISS index is mapped from, until the first add reads it into memory."""

    # -- what it holds -----------------------------------------------------------------------------

    def __len__(self) -> int:
        """Live vectors."""
        return self.rows - self.dead

    @property
    def labels(self) -> np.ndarray:
        """Chunk id of every row, dead ones included (a view: do not keep it across writes)."""
        return self._labels[: self.rows]

    def alive(self) -> np.ndarray:
        """Boolean mask of the live rows."""
        bits = np.unpackbits(self._dead_bits[: _nbytes(self.rows)], count=self.rows, bitorder="little")
        return bits == 0

    def ids(self) -> np.ndarray:
        """The live chunk ids, in row order."""
        return self.labels[self.alive()] if self.dead else self.labels.copy()

    def live_batches(self, size: int = 8192) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(chunk ids, vectors) of the live rows, `size` rows at a time, in row order."""
        stored = self._stored()
        for start in range(0, self.rows, size):
            stop = min(start + size, self.rows)
            rows = np.arange(start, stop)
            if self.dead:
                rows = rows[self.alive()[start:stop]]
            if len(rows):
                yield self.labels[rows], stored[rows]

    def vectors_of(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(chunk ids, vectors) of those of `ids` the index holds alive, in the order given: copies
        of the stored vectors, bit for bit what the store holds (a hybrid search scores the chunks
        only its lexical half found without reading them from the store)."""
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        rows = self._rows_of(ids)
        held = rows >= 0
        if self.dead and held.any():
            held[held] = ~self._is_dead(rows[held])
        return ids[held], self._stored()[rows[held]]

    def _flat(self) -> Any:
        """The flat index holding the vectors: the index itself, or the HNSW graph's storage."""
        return self.index if self.kind == "flat" else faiss.downcast_index(self.index.storage)

    def _stored(self) -> np.ndarray:
        """The stored vectors as a (rows, dim) view of FAISS's own memory (valid until the next add)."""
        if self.rows == 0:
            return np.empty((0, self.dim), dtype=np.float32)
        return faiss.rev_swig_ptr(self._flat().get_xb(), self.rows * self.dim).reshape(self.rows, self.dim)

    # -- writes ------------------------------------------------------------------------------------

    def add(self, ids: np.ndarray | list[int], vectors: np.ndarray) -> None:
        """Add vectors under their chunk ids; an id the index already holds alive is skipped."""
        one_thread()
        ids = np.ascontiguousarray(ids, dtype=np.int64).reshape(-1)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape != (len(ids), self.dim):
            raise ValueError(f"vectors have shape {vectors.shape}, expected ({len(ids)}, {self.dim})")
        if not len(ids):
            return
        order = np.argsort(ids, kind="stable")
        ids, vectors = ids[order], vectors[order]
        keep = np.ones(len(ids), dtype=bool)
        keep[1:] = ids[1:] != ids[:-1]
        if self.rows:
            # A chunk's vector never changes (ids are never reused), so an id the index holds keeps
            # its row: alive, the add is a repeat; dead, it comes back to life.
            rows = self._rows_of(ids)
            held = rows >= 0
            self._revive(rows[held])
            keep &= ~held
        if not keep.all():
            ids, vectors = ids[keep], np.ascontiguousarray(vectors[keep])
            if not len(ids):
                return
        if self.rows and ids[0] <= self._labels[self.rows - 1]:
            self._increasing = False
        if self._mapped is not None:
            self._own()
        self.index.add(vectors)
        self._grow(self.rows + len(ids))
        self._labels[self.rows: self.rows + len(ids)] = ids
        self.rows += len(ids)
        self._order = None

    @property
    def mapped(self) -> bool:
        """Whether the FAISS index is still read from its file's mapping (see the module's doc)."""
        return self._mapped is not None

    def _own(self) -> None:
        """Read the mapped FAISS index into memory, from the file it was mapped from (opened at
        load: a checkpoint since may have put another file at that path). The mapping's pages leave
        this process's resident set first, so memory never holds the index twice over; the mapping
        itself lives as long as the old FAISS object (a caller's stray reference stays valid)."""
        mapped = self._mapped
        if mapped is None:
            return
        try:
            mapped.view.madvise(mmap.MADV_DONTNEED)
        except (AttributeError, OSError, ValueError):  # not offered here: only the peak grows
            pass
        # Until the copy is in place the index stays mapped: an add after a failed read must fail
        # here again, never reach FAISS's add on the mapping.
        mapped.file.seek(mapped.offset)
        index = faiss.read_index(faiss.PyCallbackIOReader(mapped.file.read))  # type: ignore[attr-defined]
        if index.ntotal != self.index.ntotal or index.d != self.dim:
            raise ValueError(f"{mapped.file.name} changed under its mapping")
        self.index, self._mapped = index, None
        mapped.file.close()

    def remove(self, ids: np.ndarray | list[int]) -> int:
        """Tombstone the rows of these chunk ids (ids it does not hold are ignored); returns how
        many rows died."""
        if not len(ids) or not self.rows:
            return 0
        rows = self._rows_of(np.asarray(ids, dtype=np.int64).reshape(-1))
        rows = np.unique(rows[rows >= 0])
        rows = rows[~self._is_dead(rows)]
        if len(rows):
            np.bitwise_or.at(self._dead_bits, rows >> 3, (1 << (rows & 7)).astype(np.uint8))
            self.dead += len(rows)
        return len(rows)

    def _revive(self, rows: np.ndarray) -> None:
        rows = rows[self._is_dead(rows)]
        if len(rows):
            np.bitwise_and.at(self._dead_bits, rows >> 3, ~(1 << (rows & 7)).astype(np.uint8))
            self.dead -= len(rows)

    def _grow(self, rows: int) -> None:
        if rows > len(self._labels):
            capacity = max(rows, 2 * len(self._labels), 1024)
            labels = np.empty(capacity, dtype=np.int64)
            labels[: self.rows] = self._labels[: self.rows]
            self._labels = labels
        if _nbytes(rows) > len(self._dead_bits):
            bits = np.zeros(_nbytes(len(self._labels)), dtype=np.uint8)
            bits[: len(self._dead_bits)] = self._dead_bits
            self._dead_bits = bits

    def _is_dead(self, rows: np.ndarray) -> np.ndarray:
        return ((self._dead_bits[rows >> 3] >> (rows & 7).astype(np.uint8)) & 1).astype(bool)

    def _rows_of(self, ids: np.ndarray) -> np.ndarray:
        """Row of each chunk id, -1 where the index has none."""
        labels = self.labels
        if not len(labels):
            return np.full(len(ids), -1, dtype=np.int64)
        if self._increasing:
            rows = np.searchsorted(labels, ids)
        else:
            if self._order is None:
                self._order = np.argsort(labels, kind="stable")
            at = np.searchsorted(labels[self._order], ids)
            rows = self._order[np.minimum(at, len(labels) - 1)]
            rows = np.where(at < len(labels), rows, len(labels))
        found = rows < len(labels)
        found[found] = labels[rows[found]] == ids[found]
        return np.where(found, rows, -1).astype(np.int64)

    # -- search ------------------------------------------------------------------------------------

    def search(self, query: np.ndarray, k: int, allowed: np.ndarray | None = None) -> list[tuple[int, float]]:
        """Top-k (chunk id, cosine) for one normalised query; `allowed` restricts the ids searched."""
        one_thread()
        query = np.ascontiguousarray(query, dtype=np.float32).reshape(1, -1)
        if query.shape[1] != self.dim:
            raise ValueError(f"query has {query.shape[1]} dimensions, the index {self.dim}")
        live = len(self)
        if k <= 0 or live <= 0:
            return []
        if allowed is not None:
            allowed = np.asarray(allowed, dtype=np.int64).reshape(-1)
            few = self.kind == "flat" or len(allowed) < EXACT_FILTER_SHARE * self.rows
            mask = None if few else self._mask_of(allowed)
            rows = self._live_rows_of(allowed) if mask is None else np.flatnonzero(mask)
            if not len(rows):
                return []
            if mask is None or len(rows) < EXACT_FILTER_SHARE * self.rows:
                return self._exact_among(query[0], k, rows)
            bitmap = np.packbits(mask, bitorder="little")
            # FAISS keeps raw pointers to the bitmap and to inner selectors: `keep` holds them
            # until the search has returned.
            keep: list[object] = [bitmap]
            selector: Any = faiss.IDSelectorBitmap(self.rows, faiss.swig_ptr(bitmap))
            selected = len(rows)
        else:
            keep, selector, selected = [], None, live
            if self.dead:
                dead = faiss.IDSelectorBitmap(self.rows, faiss.swig_ptr(self._dead_bits))
                selector = faiss.IDSelectorNot(dead)
                keep += [dead, self._dead_bits]
        k = min(k, selected)
        params: Any
        if self.kind == "flat":
            params = faiss.SearchParameters()
        else:
            # Rows the selector skips still cost graph steps: widen the walk by the share it keeps.
            ef = min(max(math.ceil(self.ef_search * self.rows / selected), k), max(MAX_EF_SEARCH, k))
            params = faiss.SearchParametersHNSW()  # type: ignore[attr-defined]
            params.efSearch = ef
        if selector is not None:
            params.sel = selector
        scores, found = self.index.search(query, k, params=params)
        del keep
        labels = self.labels
        return [(int(labels[r]), float(s)) for r, s in zip(found[0], scores[0], strict=True) if r >= 0]

    def _live_rows_of(self, ids: np.ndarray) -> np.ndarray:
        """The live rows of these chunk ids, sorted, each once (for a few ids)."""
        if len(ids) > 1 and not bool((ids[1:] > ids[:-1]).all()):
            ids = np.unique(ids)
        rows = self._rows_of_runs(ids) if self._increasing else self._rows_of(ids)
        rows = rows[rows >= 0] if self._increasing else np.unique(rows[rows >= 0])
        return rows[~self._is_dead(rows)] if self.dead and len(rows) else rows

    def _rows_of_runs(self, ids: np.ndarray) -> np.ndarray:
        """`_rows_of` for strictly increasing ids while the labels increase too. A filter's ids
        come in runs (a document's chunks are written together, so their ids are consecutive), and
        a run whose first and last ids sit that many rows apart is held whole in consecutive rows:
        one binary search per run instead of one per id."""
        labels = self.labels
        if not len(ids) or not len(labels):
            return np.full(len(ids), -1, dtype=np.int64)
        first = np.flatnonzero(np.concatenate(([True], ids[1:] != ids[:-1] + 1)))
        length = np.diff(np.append(first, len(ids)))
        start = np.searchsorted(labels, ids[first])
        last = start + length - 1
        whole = last < len(labels)
        whole[whole] = labels[last[whole]] == ids[first[whole]] + length[whole] - 1
        rows = ids - np.repeat(ids[first] - start, length)  # right for the ids of whole runs
        broken = ~np.repeat(whole, length)
        if broken.any():
            rows[broken] = self._rows_of(ids[broken])
        return rows

    def _mask_of(self, ids: np.ndarray) -> np.ndarray:
        """Boolean mask of the live rows whose chunk id is among `ids` (for many ids: a lookup table
        by chunk id costs one pass over the rows instead of a binary search per id)."""
        labels = self.labels
        top = int(labels[-1] if self._increasing else labels.max())
        lookup = np.zeros(top + 1, dtype=bool)
        lookup[ids[(ids >= 0) & (ids <= top)]] = True
        mask = lookup[labels]
        return mask & self.alive() if self.dead else mask

    def _exact_among(self, query: np.ndarray, k: int, rows: np.ndarray) -> list[tuple[int, float]]:
        """Exact top-k among the given live rows (sorted), reading only their vectors: a filter that
        keeps few rows costs what it keeps, not a pass over every row."""
        rows = np.ascontiguousarray(rows, dtype=np.int64)
        query = np.ascontiguousarray(query, dtype=np.float32)
        scores = np.empty(len(rows), dtype=np.float32)
        # FAISS reads each row in place (one thread for one query): gathering the rows into a copy
        # first cost four times as much (9,900 rows of 384: 6 ms against 1.5).
        faiss.fvec_inner_products_by_idx(  # type: ignore[attr-defined]
            faiss.swig_ptr(scores), faiss.swig_ptr(query), self._flat().get_xb(), faiss.swig_ptr(rows),
            self.dim, 1, len(rows))
        k = min(k, len(rows))
        top = np.argpartition(-scores, k - 1)[:k] if k < len(rows) else np.arange(len(rows))
        top = top[np.lexsort((rows[top], -scores[top]))]  # best first; ties by row, as FAISS orders them
        labels = self.labels
        return [(int(labels[rows[i]]), float(scores[i])) for i in top]

    # -- persistence ---------------------------------------------------------------------------------

    def save(self, path: Path) -> None:
        """Write atomically: a crash leaves the previous file or the new one, never a torn one."""
        tmp = self.write_temp(path)
        finish_temp(tmp, path)

    def write_temp(self, path: Path) -> Path:
        """Write the index beside `path` under a temporary name (not yet synced); returns that name.
        Only this part reads the index: the caller may release its lock before `finish_temp`."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        header = {"stamp": self.stamp, "dim": self.dim, "kind": self.kind, "rows": self.rows, "dead": self.dead,
                  "increasing": self._increasing}
        with open(tmp, "wb") as f:
            f.write(_MAGIC)
            f.write(json.dumps(header).encode() + b"\n")
            f.write(self.labels.tobytes())
            f.write(self._dead_bits[: _nbytes(self.rows)].tobytes())
            faiss.write_index(self.index, faiss.PyCallbackIOWriter(f.write))  # type: ignore[attr-defined]
        return tmp

    @classmethod
    def load(cls, path: Path, *, ef_search: int = HNSW_EF_SEARCH, mapped: bool = True) -> VectorIndex:
        """Read a saved index, its FAISS part mapped from the file unless `mapped` is False (or this
        FAISS cannot map); raises ValueError if the file is not one of ours or is damaged."""
        f = open(path, "rb")  # noqa: SIM115 (a mapped index keeps it, to read itself into memory from)
        keep_open = False
        try:
            header = _read_header(f, path)
            try:
                dim, rows, kind = int(header["dim"]), int(header["rows"]), header["kind"]
                out = cls(dim, int(header["stamp"]), kind=kind, ef_search=ef_search)
                labels = np.fromfile(f, dtype=np.int64, count=rows)
                dead_bits = np.fromfile(f, dtype=np.uint8, count=_nbytes(rows))
            except (KeyError, TypeError, ValueError) as e:
                raise ValueError(f"{path}: damaged header ({e})") from None
            if len(labels) != rows or len(dead_bits) != _nbytes(rows):
                raise ValueError(f"{path} is truncated")
            try:
                if mapped and _CAN_MAP:
                    index, out._mapped = _read_mapped(f)
                    keep_open = True
                else:
                    index = faiss.read_index(faiss.PyCallbackIOReader(f.read))  # type: ignore[attr-defined]
            except RuntimeError as e:
                raise ValueError(f"{path}: {e}") from None
        finally:
            if not keep_open:
                f.close()
        if index.d != dim or index.ntotal != rows:
            raise ValueError(f"{path}: header says {rows} rows of {dim}, the index has {index.ntotal} of {index.d}")
        if (kind == "hnsw") != isinstance(index, faiss.IndexHNSWFlat):
            raise ValueError(f"{path}: header says {kind}, the index is {type(index).__name__}")
        out.index = index
        out.rows = rows
        out._labels = labels
        out._dead_bits = dead_bits
        out.dead = int(np.unpackbits(dead_bits, count=rows, bitorder="little").sum())
        out._increasing = bool(header.get("increasing", True))
        return out


_CAN_MAP = hasattr(faiss, "ZeroCopyIOReader") and hasattr(faiss, "IO_FLAG_MMAP_IFC")
"""FAISS 1.11 and later read an index in place from memory; earlier ones copy it."""


@dataclass(frozen=True)
class _Mapping:
    file: BinaryIO
    """The saved file, open from the load on (the same file even once a checkpoint replaces it)."""
    offset: int
    """Where the FAISS part begins in it."""
    view: mmap.mmap


def _read_mapped(f: BinaryIO) -> tuple[Any, _Mapping]:
    """The FAISS index that starts at `f`'s position, its vectors and graph left in the file's
    mapping (read-only: FAISS never writes to an index it does not grow)."""
    offset = f.tell()
    view = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    data = np.frombuffer(view, dtype=np.uint8)[offset:]
    index: Any = faiss.read_index(faiss.ZeroCopyIOReader(faiss.swig_ptr(data), len(data)),  # type: ignore[attr-defined]
                                  faiss.IO_FLAG_MMAP_IFC)
    # The FAISS object points into the mapping: it holds the mapping alive for as long as it lives.
    index.referenced_objects = [view, data]
    _populate(view)
    return index, _Mapping(f, offset, view)


_MADV_POPULATE_READ = getattr(mmap, "MADV_POPULATE_READ", 22 if sys.platform == "linux" else None)


def _populate(view: mmap.mmap) -> None:
    """Map every page of the file now (0.3-0.4 s for 1.8 GB already in the page cache), read from the
    disk if need be: a ready index is in memory. Otherwise the first searches fault the graph in a
    few pages at a time (at 1M, 5-15 ms each instead of 2 from the page cache; from a disk, far
    longer). Linux 5.14 and later; elsewhere searches fault pages in as they go."""
    if _MADV_POPULATE_READ is None:
        return
    try:
        view.madvise(_MADV_POPULATE_READ)
    except OSError:
        pass


def finish_temp(tmp: Path, path: Path) -> None:
    """Make a file from `write_temp` durable and put it in place of `path` in one step."""
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_stamp(path: Path) -> int | None:
    """The change number a saved index reflects, from its header only; None when there is no
    readable file."""
    try:
        with open(path, "rb") as f:
            return int(_read_header(f, path)["stamp"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _read_header(f: BinaryIO, path: Path) -> dict:
    if f.read(len(_MAGIC)) != _MAGIC:
        raise ValueError(f"{path} is not a saved index (or one of an older format)")
    line = f.readline(1 << 16)
    try:
        header = json.loads(line)
    except ValueError:
        raise ValueError(f"{path}: damaged header") from None
    if not isinstance(header, dict):
        raise ValueError(f"{path}: damaged header")
    return header


def _nbytes(rows: int) -> int:
    return (rows + 7) // 8
