"""SciFact's chunks and train queries with their real all-MiniLM-L6-v2 vectors, embedded once and cached.

The synthetic collections (`bench.synthetic`) are resampled from these, so the expensive part (the
local model over ~6k chunks and ~800 queries: a few minutes here) runs once per machine; later runs
read two small files from the cache folder (`bench.cache.cache_dir()`).

Chunks are made exactly as `rag ingest` makes them for a collection with the default settings: the
JSON Lines loader, then the collection chunker with the local model's limits.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.bench_embedder import scifact_dir
from bench.cache import cache_dir

__all__ = ["SciFact", "load_scifact"]

VERSION = 1
"""Bump when the way chunks or vectors are made changes: the cache is keyed by it."""


@dataclass(frozen=True)
class SciFact:
    chunk_texts: list[str]
    chunk_vectors: np.ndarray
    """(chunks, 384) float32, L2-normalised: the local model's vectors of `chunk_texts`."""
    query_ids: list[str]
    query_texts: list[str]
    query_vectors: np.ndarray
    """(queries, 384) float32: the train split's queries (those with judgements) as the model embeds a query."""


def _fingerprint(folder: Path) -> str:
    h = hashlib.sha256(f"v{VERSION}".encode())
    for name in ("corpus.jsonl", "queries.jsonl", "qrels/train.tsv"):
        h.update((folder / name).read_bytes())
    return h.hexdigest()[:16]


def _train_queries(folder: Path) -> tuple[list[str], list[str]]:
    judged = {line.split("\t")[0] for line in (folder / "qrels" / "train.tsv").read_text().splitlines()[1:]
              if line.strip()}
    ids, texts = [], []
    for line in (folder / "queries.jsonl").read_text().splitlines():
        record = json.loads(line)
        if str(record["_id"]) in judged:
            ids.append(str(record["_id"]))
            texts.append(record["text"])
    return ids, texts


def _chunk_corpus(corpus: Path, embedder) -> list[str]:  # noqa: ANN001 (an Embedder)
    from ingest.loaders import load_file
    from rag.chunking import DEFAULT_CHUNK_OVERLAP, DEFAULT_CHUNK_SIZE, Chunker

    chunker = Chunker(DEFAULT_CHUNK_SIZE, DEFAULT_CHUNK_OVERLAP, embedder_limit=embedder.max_input_tokens,
                      embedder_count=embedder.count_tokens)
    return [c.text for doc in load_file(corpus) for c in chunker.chunk(doc.text, doc.elements)]


def load_scifact(*, log=print) -> SciFact:  # noqa: ANN001
    """SciFact chunks and train queries with their MiniLM vectors, from the cache or built now."""
    source = scifact_dir()
    folder = cache_dir() / f"scifact-minilm-{_fingerprint(source)}"
    texts_file, vectors_file = folder / "chunks.json", folder / "chunk_vectors.npy"
    queries_file, query_vectors_file = folder / "queries.json", folder / "query_vectors.npy"
    if not query_vectors_file.exists():
        from rag.config import Settings
        from rag.service import Service

        folder.mkdir(parents=True, exist_ok=True)
        # The model's built ONNX file lives in this home, so it is built once too.
        with Service(Settings(home=cache_dir() / "model-home")) as service:
            embedder = service.embedder("local")
            texts = _chunk_corpus(source / "corpus.jsonl", embedder)
            log(f"embedding {len(texts):,} SciFact chunks with the local model, once (cached in {folder}) ...")
            t0 = time.perf_counter()
            vectors = embedder.embed(texts)
            log(f"  {time.perf_counter() - t0:.0f} s")
            ids, queries = _train_queries(source)
            query_vectors = embedder.embed(queries, truncate=True)
        _write_json(texts_file, texts)
        _write_npy(vectors_file, vectors)
        _write_json(queries_file, {"ids": ids, "texts": queries})
        _write_npy(query_vectors_file, query_vectors)  # written last: its presence means complete
    queries = json.loads(queries_file.read_text())
    return SciFact(json.loads(texts_file.read_text()), np.load(vectors_file), queries["ids"], queries["texts"],
                   np.load(query_vectors_file))


def _write_json(path: Path, obj: object) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj))
    tmp.replace(path)


def _write_npy(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(path.stem + ".tmp.npy")
    np.save(tmp, array)
    tmp.replace(path)
