"""Synthetic collections of 100k to 1M chunks, made from SciFact without embedding every chunk.

Vectors: each synthetic chunk starts from a real MiniLM vector of a SciFact chunk (its *source*)
and moves away from it by noise drawn from the data's own spread (a random combination of other
centred chunk vectors, so the copies stay where real embeddings live rather than in directions no
text reaches), then is L2-normalised. The noise level is chosen so that the mean cosine of a
synthetic vector to its source is about 0.85: at most 0.9, so the top 10 of a query is not decided
by noise among near-copies of one chunk.

Text: sentences of the source chunk in a new order (about half of them), filled up with sentences
drawn from the whole corpus until ~150 cl100k tokens, so the words of a chunk and its vector still
agree, roughly, as they do in real data.

Documents: 1 to 15 chunks each (8 on average); metadata `shard` (100 values: a filter on one
selects ~1% of the chunks) and `half` (2 values: ~50%), drawn independently.

A set is built once per size and seed and cached (`bench.cache.cache_dir()`): vectors as a .npy
read by memory-mapping, text as sentence ids; a rerun opens it in under a second.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.cache import cache_dir
from bench.scifact_source import SciFact, load_scifact

__all__ = ["SyntheticSet", "build_or_load", "SIZES"]

VERSION = 1
SIZES = {"10k": 10_000, "100k": 100_000, "1m": 1_000_000}
TARGET_MEAN_COSINE = 0.85
MAX_MEAN_COSINE = 0.9
PARTNERS = 8
"""Centred chunk vectors combined into one noise direction."""
CHUNK_TOKENS = (130, 170)
"""A chunk's text is filled up to a length drawn from this range (cl100k tokens)."""
CHUNKS_PER_DOCUMENT = (1, 15)
SHARDS = 100


@dataclass(frozen=True)
class SyntheticSet:
    size: int
    vectors: np.ndarray
    """(size, 384) float32, L2-normalised; memory-mapped from the cache."""
    source: np.ndarray
    """(size,) SciFact chunk each row was resampled from."""
    doc_offsets: np.ndarray
    """(documents + 1,): the rows of document d are doc_offsets[d]:doc_offsets[d + 1]."""
    shard: np.ndarray
    """(documents,) 0-99: metadata `shard`."""
    half: np.ndarray
    """(documents,) 0-1: metadata `half`."""
    sentence_offsets: np.ndarray
    sentence_ids: np.ndarray
    sentences: list[str]
    sentence_tokens: np.ndarray
    noise: float
    mean_cosine: float

    @property
    def documents(self) -> int:
        return len(self.doc_offsets) - 1

    def chunk_text(self, row: int) -> str:
        a, b = self.sentence_offsets[row], self.sentence_offsets[row + 1]
        return " ".join(self.sentences[i] for i in self.sentence_ids[a:b])

    def chunk_tokens(self, row: int) -> int:
        a, b = self.sentence_offsets[row], self.sentence_offsets[row + 1]
        return int(self.sentence_tokens[self.sentence_ids[a:b]].sum())

    def metadata(self, doc: int) -> dict:
        return {"shard": f"s{int(self.shard[doc]):02d}", "half": "even" if self.half[doc] == 0 else "odd"}

    def rows_of(self, doc: int) -> range:
        return range(int(self.doc_offsets[doc]), int(self.doc_offsets[doc + 1]))

    def iter_documents(self, start: int = 0, stop: int | None = None) -> Iterator[tuple[int, list[str]]]:
        """(document number, chunk texts) in order."""
        for d in range(start, self.documents if stop is None else stop):
            yield d, [self.chunk_text(r) for r in self.rows_of(d)]


def build_or_load(size: int, *, seed: int = 0, log=print) -> SyntheticSet:  # noqa: ANN001
    """The cached set of `size` chunks, built first if it is not there."""
    folder = cache_dir() / f"synthetic-v{VERSION}-{size}-seed{seed}"
    if not (folder / "manifest.json").exists():
        t0 = time.perf_counter()
        _build(folder, size, seed, load_scifact(log=log), log)
        log(f"  built in {time.perf_counter() - t0:.0f} s, cached in {folder}")
    manifest = json.loads((folder / "manifest.json").read_text())
    arrays = {name: np.load(folder / f"{name}.npy", mmap_mode="r" if name == "vectors" else None)
              for name in ("vectors", "source", "doc_offsets", "shard", "half", "sentence_offsets",
                           "sentence_ids", "sentence_tokens")}
    return SyntheticSet(size=size, sentences=json.loads((folder / "sentences.json").read_text()),
                        noise=manifest["noise"], mean_cosine=manifest["mean_cosine"], **arrays)


# -- building ---------------------------------------------------------------------------------------

def _noise_level(target_cosine: float) -> float:
    """Noise length giving `target_cosine` to the source when the noise is orthogonal to it:
    cos = 1 / sqrt(1 + sigma^2)."""
    return float(np.sqrt(1 / target_cosine**2 - 1))


def _vectors(out: np.ndarray, source: np.ndarray, real: np.ndarray, noise: float, seed: int,
             block: int = 20_000) -> float:
    """Fill `out` block by block (it may be a memory map); returns the mean cosine to the source."""
    rng = np.random.default_rng(seed + 1)
    centred = real - real.mean(axis=0, keepdims=True)
    total = 0.0
    for start in range(0, len(out), block):
        rows = source[start:start + block]
        n = len(rows)
        partners = rng.integers(0, len(real), size=(n, PARTNERS))
        weights = rng.standard_normal((n, PARTNERS)).astype(np.float32)
        direction = np.einsum("bk,bkd->bd", weights, centred[partners])
        direction /= np.maximum(np.linalg.norm(direction, axis=1, keepdims=True), 1e-12)
        v = real[rows] + noise * direction
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        out[start:start + n] = v
        total += float(np.einsum("ij,ij->i", v, real[rows]).sum())
    return total / len(out)


def _split_sentences(chunks: list[str]) -> tuple[list[str], list[list[int]]]:
    from rag.chunking import sentence_spans

    pool: dict[str, int] = {}
    per_chunk = []
    for text in chunks:
        ids = []
        for a, b in sentence_spans(text):
            ids.append(pool.setdefault(" ".join(text[a:b].split()), len(pool)))
        per_chunk.append(ids)
    return list(pool), per_chunk


def _texts(source: np.ndarray, per_chunk: list[list[int]], tokens: np.ndarray, seed: int
           ) -> tuple[np.ndarray, np.ndarray]:
    rng = random.Random(seed + 2)
    offsets = np.zeros(len(source) + 1, dtype=np.int64)
    flat: list[int] = []
    pool = len(tokens)
    for row, s in enumerate(source.tolist()):
        target = rng.randint(*CHUNK_TOKENS)
        own = per_chunk[s][:]
        rng.shuffle(own)
        picked = own[: max(1, len(own) // 2)]
        count = int(tokens[picked].sum())
        while count < target:
            extra = rng.randrange(pool)
            picked.append(extra)
            count += int(tokens[extra])
        flat.extend(picked)
        offsets[row + 1] = len(flat)
    return offsets, np.asarray(flat, dtype=np.int32)


def _build(folder: Path, size: int, seed: int, scifact: SciFact, log) -> None:  # noqa: ANN001
    from rag.tokens import DEFAULT_ENCODING, get_encoding

    log(f"building a synthetic collection of {size:,} chunks from {len(scifact.chunk_texts):,} SciFact chunks ...")
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    real = np.ascontiguousarray(scifact.chunk_vectors, dtype=np.float32)
    source = rng.integers(0, len(real), size=size).astype(np.int32)

    noise = _noise_level(TARGET_MEAN_COSINE)
    vectors = np.lib.format.open_memmap(folder / "vectors.tmp.npy", mode="w+", dtype=np.float32,
                                        shape=(size, real.shape[1]))
    mean_cosine = _vectors(vectors, source, real, noise, seed)
    vectors.flush()
    del vectors
    if mean_cosine > MAX_MEAN_COSINE:
        raise RuntimeError(f"mean cosine to the source is {mean_cosine:.3f}, above {MAX_MEAN_COSINE}")
    (folder / "vectors.tmp.npy").replace(folder / "vectors.npy")

    sentences, per_chunk = _split_sentences(scifact.chunk_texts)
    enc = get_encoding(DEFAULT_ENCODING)
    tokens = np.asarray([len(ids) for ids in enc.encode_batch(sentences, disallowed_special=())], dtype=np.int32)
    sentence_offsets, sentence_ids = _texts(source, per_chunk, tokens, seed)

    sizes = []
    total = 0
    while total < size:
        n = min(int(rng.integers(CHUNKS_PER_DOCUMENT[0], CHUNKS_PER_DOCUMENT[1] + 1)), size - total)
        sizes.append(n)
        total += n
    doc_offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    shard = rng.integers(0, SHARDS, size=len(sizes)).astype(np.int8)
    half = rng.integers(0, 2, size=len(sizes)).astype(np.int8)

    for name, array in (("source", source), ("doc_offsets", doc_offsets), ("shard", shard), ("half", half),
                        ("sentence_offsets", sentence_offsets), ("sentence_ids", sentence_ids),
                        ("sentence_tokens", tokens)):
        np.save(folder / f"{name}.npy", array)
    (folder / "sentences.json").write_text(json.dumps(sentences))
    manifest = {"size": size, "seed": seed, "documents": len(sizes), "noise": noise,
                "mean_cosine": mean_cosine, "partners": PARTNERS, "scifact_chunks": len(real)}
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1))  # last: marks the set complete
