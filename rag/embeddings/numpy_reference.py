"""A plain numpy forward pass of all-MiniLM-L6-v2: BERT encoder, then masked mean pooling.

It is the reference the ONNX graph is checked against (tests, `bench/bench_embedder.py`): several
times slower than onnxruntime, but short enough to read line by line against Hugging Face's
`BertModel` (embeddings → N × [self-attention, add & LayerNorm, GELU feed-forward, add & LayerNorm])
and sentence-transformers' mean `Pooling`. It deliberately shares no code with `onnx_graph.py`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["BertConfig", "load_weights", "forward", "erf"]


@dataclass(frozen=True)
class BertConfig:
    """The few fields of a Hugging Face `config.json` a BERT encoder needs."""

    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    layer_norm_eps: float
    max_position_embeddings: int

    @property
    def head_size(self) -> int:
        return self.hidden_size // self.num_heads

    @classmethod
    def from_json(cls, path: Path) -> BertConfig:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
        # Only what is implemented here (and in onnx_graph.py) may pass: anything else would run
        # and give wrong vectors without a word.
        if raw.get("model_type") != "bert" or raw.get("hidden_act") != "gelu":
            raise ValueError(f"{path}: expected a BERT model with erf GELU, got "
                             f"{raw.get('model_type')!r} / {raw.get('hidden_act')!r}")
        if raw.get("position_embedding_type", "absolute") != "absolute":
            raise ValueError(f"{path}: only absolute position embeddings are supported")
        cfg = cls(
            hidden_size=int(raw["hidden_size"]),
            num_layers=int(raw["num_hidden_layers"]),
            num_heads=int(raw["num_attention_heads"]),
            intermediate_size=int(raw["intermediate_size"]),
            layer_norm_eps=float(raw["layer_norm_eps"]),
            max_position_embeddings=int(raw["max_position_embeddings"]),
        )
        if cfg.hidden_size % cfg.num_heads:
            raise ValueError(f"{path}: hidden_size {cfg.hidden_size} is not a multiple of "
                             f"num_attention_heads {cfg.num_heads}")
        return cfg


def load_weights(path: Path) -> dict[str, np.ndarray]:
    """The tensors of a `model.safetensors` file as numpy arrays, names as in Hugging Face BERT."""
    from safetensors.numpy import load_file

    weights = load_file(str(path))
    if weights["embeddings.word_embeddings.weight"].dtype != np.float32:
        raise ValueError(f"{path}: expected float32 weights")
    return weights


# Abramowitz & Stegun, Handbook of Mathematical Functions, formula 7.1.26: |error| ≤ 1.5e-7, i.e.
# float32 resolution. numpy has no erf of its own, and scipy is not a dependency of this project.
_AS_P = 0.3275911
_AS_A = (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)


def erf(x: np.ndarray) -> np.ndarray:
    """The error function, elementwise, to float32 accuracy (|error| < 6e-7 in float32).

    Evaluated in x's float type with in-place steps: the GELU activations are the largest arrays of
    the forward pass, and float64 temporaries made this the slowest part of it.
    """
    x = np.asarray(x)
    if x.dtype.kind != "f":
        x = x.astype(np.float64)
    shape, x = x.shape, x.reshape(-1)  # 1-D, so the in-place steps also work for a scalar
    dt = x.dtype.type
    a = np.abs(x)
    t = dt(_AS_P) * a
    t += dt(1.0)
    np.reciprocal(t, out=t)
    poly = dt(_AS_A[4]) * t
    for coef in (_AS_A[3], _AS_A[2], _AS_A[1], _AS_A[0]):
        poly += dt(coef)
        poly *= t
    np.multiply(a, a, out=a)
    np.negative(a, out=a)
    np.exp(a, out=a)
    poly *= a  # poly·exp(-x²)
    np.subtract(dt(1.0), poly, out=poly)
    return np.copysign(poly, x, out=poly).reshape(shape)


def _layer_norm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    centred = x - mean
    var = (centred * centred).mean(axis=-1, keepdims=True)
    return centred / np.sqrt(var + eps) * gamma + beta


def _linear(x: np.ndarray, weights: dict[str, np.ndarray], name: str) -> np.ndarray:
    # Hugging Face stores Linear weights as (out, in). Flattening to 2-D makes one BLAS call of
    # the whole batch; numpy would otherwise call it once per sentence (far slower on short ones).
    flat = x.reshape(-1, x.shape[-1]) @ weights[f"{name}.weight"].T + weights[f"{name}.bias"]
    return flat.reshape(*x.shape[:-1], flat.shape[-1])


def forward(
    weights: dict[str, np.ndarray],
    config: BertConfig,
    input_ids: np.ndarray,
    attention_mask: np.ndarray,
    token_type_ids: np.ndarray | None = None,
) -> np.ndarray:
    """Mean-pooled (not normalised) float32 sentence vectors (batch, hidden) for padded token ids.

    `input_ids`, `attention_mask` (1 = real token, 0 = padding) and `token_type_ids` are
    (batch, seq) integer arrays; padding positions affect nothing.
    """
    input_ids = np.asarray(input_ids, dtype=np.int64)
    mask = np.asarray(attention_mask).astype(np.float32)
    if input_ids.ndim != 2 or mask.shape != input_ids.shape:
        raise ValueError(f"input_ids {input_ids.shape} and attention_mask {mask.shape} must be "
                         "the same (batch, seq) shape")
    batch, seq = input_ids.shape
    if seq > config.max_position_embeddings:
        raise ValueError(f"sequence of {seq} exceeds {config.max_position_embeddings} positions")
    if token_type_ids is None:
        token_type_ids = np.zeros_like(input_ids)
    hid, heads, dh = config.hidden_size, config.num_heads, config.head_size
    eps = config.layer_norm_eps

    x = (weights["embeddings.word_embeddings.weight"][input_ids]
         + weights["embeddings.position_embeddings.weight"][np.arange(seq)][None, :, :]
         + weights["embeddings.token_type_embeddings.weight"][token_type_ids])
    x = _layer_norm(x, weights["embeddings.LayerNorm.weight"], weights["embeddings.LayerNorm.bias"], eps)

    # Padding keys get the most negative float, so their softmax weight underflows to exactly 0
    # (Hugging Face's extended attention mask does the same).
    key_bias = ((1.0 - mask) * np.finfo(np.float32).min)[:, None, None, :]
    scale = np.float32(1.0 / np.sqrt(dh))

    def split_heads(t: np.ndarray) -> np.ndarray:  # (b, s, hid) → (b, heads, s, dh)
        return t.reshape(batch, seq, heads, dh).transpose(0, 2, 1, 3)

    for i in range(config.num_layers):
        p = f"encoder.layer.{i}"
        q = split_heads(_linear(x, weights, f"{p}.attention.self.query"))
        k = split_heads(_linear(x, weights, f"{p}.attention.self.key"))
        v = split_heads(_linear(x, weights, f"{p}.attention.self.value"))
        scores = (q @ k.transpose(0, 1, 3, 2)) * scale + key_bias
        scores -= scores.max(axis=-1, keepdims=True)
        probs = np.exp(scores)
        probs /= probs.sum(axis=-1, keepdims=True)
        context = (probs @ v).transpose(0, 2, 1, 3).reshape(batch, seq, hid)
        attn = _linear(context, weights, f"{p}.attention.output.dense")
        x = _layer_norm(attn + x, weights[f"{p}.attention.output.LayerNorm.weight"],
                        weights[f"{p}.attention.output.LayerNorm.bias"], eps)
        h = _linear(x, weights, f"{p}.intermediate.dense")
        h = 0.5 * h * (1.0 + erf(h / np.float32(np.sqrt(2.0))))  # exact (erf) GELU, as BERT uses
        out = _linear(h, weights, f"{p}.output.dense")
        x = _layer_norm(out + x, weights[f"{p}.output.LayerNorm.weight"],
                        weights[f"{p}.output.LayerNorm.bias"], eps)

    # Masked mean pooling (sentence-transformers' `pooling_mode_mean_tokens`).
    summed = np.einsum("bsh,bs->bh", x, mask)
    counts = np.maximum(mask.sum(axis=1, keepdims=True), 1e-9)
    return (summed / counts).astype(np.float32)
