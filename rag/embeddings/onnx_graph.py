"""Builds an ONNX graph of a BERT sentence encoder (all-MiniLM-L6-v2) from its safetensors weights.

No torch and no exporter: the encoder is a few dozen standard ONNX operators, written out with
`onnx.helper`. Inputs `input_ids` and `attention_mask` (int64, batch × seq, padded); output
`mean_pooled` (float32, batch × hidden): masked mean of the last hidden states, not normalised
(`Embedder.embed` normalises).

Bump `BUILDER_VERSION` when the graph changes meaning; the cache key in `local.py` also hashes this
file, so an edited builder never reuses a stale cached model.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from rag.embeddings.numpy_reference import BertConfig

__all__ = ["BUILDER_VERSION", "OPSET", "build_model"]

BUILDER_VERSION = 1
OPSET = 17
"""17 is the first opset with `LayerNormalization`, which onnxruntime runs as one fused kernel."""


class _Graph:
    """Collects nodes and initializers, handing out unique tensor names."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._count = 0

    def const(self, name: str, value: np.ndarray) -> str:
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def op(self, op_type: str, inputs: list[str], name: str | None = None, **attrs) -> str:
        self._count += 1
        out = name or f"{op_type.lower()}_{self._count}"
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=f"n{self._count}_{op_type}", **attrs))
        return out

    def ops(self, op_type: str, inputs: list[str], n_out: int, **attrs) -> list[str]:
        self._count += 1
        outs = [f"{op_type.lower()}_{self._count}_{i}" for i in range(n_out)]
        self.nodes.append(helper.make_node(op_type, inputs, outs, name=f"n{self._count}_{op_type}", **attrs))
        return outs


def build_model(weights: dict[str, np.ndarray], config: BertConfig) -> onnx.ModelProto:
    """The encoder + mean pooling as a checked ONNX model (opset `OPSET`)."""
    g = _Graph()
    hid, heads, dh = config.hidden_size, config.num_heads, config.head_size
    eps = config.layer_norm_eps
    f32 = np.float32

    def w(name: str) -> np.ndarray:
        return np.asarray(weights[name], dtype=f32)

    def linear(x: str, prefix: str, weight: np.ndarray | None = None, bias: np.ndarray | None = None) -> str:
        # MatMul wants (in, out); Hugging Face stores (out, in).
        wt = (w(f"{prefix}.weight") if weight is None else weight).T
        b = w(f"{prefix}.bias") if bias is None else bias
        return g.op("Add", [g.op("MatMul", [x, g.const(f"{prefix}.W", wt)]), g.const(f"{prefix}.b", b)])

    def layer_norm(x: str, prefix: str) -> str:
        return g.op("LayerNormalization",
                    [x, g.const(f"{prefix}.gamma", w(f"{prefix}.weight")),
                     g.const(f"{prefix}.beta", w(f"{prefix}.bias"))],
                    axis=-1, epsilon=eps)

    # Shape constants, shared by every layer.
    heads_shape = g.const("shape_heads", np.array([0, 0, heads, dh], dtype=np.int64))  # 0 = keep dim
    hidden_shape = g.const("shape_hidden", np.array([0, 0, hid], dtype=np.int64))
    zero_i = g.const("zero_i64", np.array([0], dtype=np.int64))
    axis0 = g.const("axis0", np.array([0], dtype=np.int64))
    axes12 = g.const("axes12", np.array([1, 2], dtype=np.int64))
    axis1 = g.const("axis1", np.array([1], dtype=np.int64))
    one_f = g.const("one_f", np.array(1.0, dtype=f32))
    half_f = g.const("half_f", np.array(0.5, dtype=f32))
    sqrt2_f = g.const("sqrt2_f", np.array(np.sqrt(2.0), dtype=f32))

    # Embeddings. Sentences are single segments, so every token_type_id is 0: that row is folded
    # into the position table once here instead of a Gather + Add per call.
    pos_type = w("embeddings.position_embeddings.weight") + w("embeddings.token_type_embeddings.weight")[0]
    words = g.op("Gather", [g.const("word_embeddings", w("embeddings.word_embeddings.weight")), "input_ids"], axis=0)
    seq_len = g.op("Shape", ["input_ids"], start=1, end=2)
    positions = g.op("Slice", [g.const("position_type_embeddings", pos_type), zero_i, seq_len, axis0])
    x = layer_norm(g.op("Add", [words, positions]), "embeddings.LayerNorm")

    # Additive key mask (batch, 1, 1, seq): 0 for real tokens, float32's most negative for padding,
    # whose softmax weight then underflows to exactly 0.
    mask_f = g.op("Cast", ["attention_mask"], to=TensorProto.FLOAT)
    inverted = g.op("Sub", [one_f, mask_f])
    mask_min = g.const("mask_min", np.array(np.finfo(f32).min, dtype=f32))
    key_bias = g.op("Unsqueeze", [g.op("Mul", [inverted, mask_min]), axes12])

    # 1/sqrt(head size) is folded into the query projection: one Mul less per layer.
    scale = f32(1.0 / np.sqrt(dh))
    for i in range(config.num_layers):
        p = f"encoder.layer.{i}"
        # Query, key and value in one MatMul (one large GEMM beats three small ones), then split.
        qkv_w = np.concatenate([w(f"{p}.attention.self.query.weight") * scale,
                                w(f"{p}.attention.self.key.weight"),
                                w(f"{p}.attention.self.value.weight")], axis=0)
        qkv_b = np.concatenate([w(f"{p}.attention.self.query.bias") * scale,
                                w(f"{p}.attention.self.key.bias"),
                                w(f"{p}.attention.self.value.bias")])
        qkv = linear(x, f"{p}.attention.self.qkv", qkv_w, qkv_b)
        q, k, v = g.ops("Split", [qkv, g.const(f"{p}.split", np.array([hid] * 3, dtype=np.int64))], 3, axis=-1)
        q = g.op("Transpose", [g.op("Reshape", [q, heads_shape])], perm=[0, 2, 1, 3])  # b, h, s, d
        k = g.op("Transpose", [g.op("Reshape", [k, heads_shape])], perm=[0, 2, 3, 1])  # b, h, d, s
        v = g.op("Transpose", [g.op("Reshape", [v, heads_shape])], perm=[0, 2, 1, 3])  # b, h, s, d
        scores = g.op("Add", [g.op("MatMul", [q, k]), key_bias])
        probs = g.op("Softmax", [scores], axis=-1)
        context = g.op("Reshape", [g.op("Transpose", [g.op("MatMul", [probs, v])], perm=[0, 2, 1, 3]), hidden_shape])
        attn = linear(context, f"{p}.attention.output.dense")
        x = layer_norm(g.op("Add", [attn, x]), f"{p}.attention.output.LayerNorm")

        h = linear(x, f"{p}.intermediate.dense")
        # Exact GELU, 0.5·h·(1 + erf(h/√2)), in the order onnxruntime's GeluFusion recognises.
        h = g.op("Mul", [g.op("Mul", [h, g.op("Add", [g.op("Erf", [g.op("Div", [h, sqrt2_f])]), one_f])]), half_f])
        out = linear(h, f"{p}.output.dense")
        x = layer_norm(g.op("Add", [out, x]), f"{p}.output.LayerNorm")

    # Masked mean pooling: sum of real tokens' states / number of real tokens.
    mask3 = g.op("Unsqueeze", [mask_f, g.const("axis2", np.array([2], dtype=np.int64))])  # b, s, 1
    summed = g.op("ReduceSum", [g.op("Mul", [x, mask3]), axis1], keepdims=0)  # b, hid
    counts = g.op("Max", [g.op("ReduceSum", [mask3, axis1], keepdims=0), g.const("tiny", np.array(1e-9, dtype=f32))])
    g.op("Div", [summed, counts], name="mean_pooled")

    graph = helper.make_graph(
        g.nodes,
        "all_minilm_l6_v2_mean_pooled",
        inputs=[helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"]),
                helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "seq"])],
        outputs=[helper.make_tensor_value_info("mean_pooled", TensorProto.FLOAT, ["batch", hid])],
        initializer=g.initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="rag.embeddings.onnx_graph", producer_version=str(BUILDER_VERSION))
    # Keep the IR version at what this opset shipped with, so older onnxruntime builds load it too.
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model
