"""The bfloat16 path (--amp on a CPU): its numerics against float32 with the same weights, and the ops its
inference graph is made of (the patterns oneDNN fuses)."""
import collections
import os

import keras
import numpy as np
import tensorflow as tf

from biobert import modeling
from biobert.config import BertConfig


def config():
    return BertConfig(vocab_size=200, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                      intermediate_size=128, max_position_embeddings=64)


def twin_models():
    """A float32 model and a bfloat16-products model holding the same weights."""
    modeling.set_matmul_dtype(None)
    f32 = modeling.build(modeling.BertClassifier(config(), 5, per_token=True))
    modeling.set_matmul_dtype("bfloat16")
    bf16 = modeling.build(modeling.BertClassifier(config(), 5, per_token=True))
    rng = np.random.default_rng(0)
    for a, b in zip(f32.weights, bf16.weights):
        value = rng.standard_normal(a.shape).astype(np.float32) * 0.1 + (1.0 if "gamma" in a.path else 0.0)
        a.assign(value)
        b.assign(value)
    return f32, bf16


def batch(rows=6, length=24):
    rng = np.random.default_rng(1)
    ids = rng.integers(1, 200, (rows, length)).astype(np.int32)
    mask = np.ones((rows, length), np.int32)
    mask[::2, length // 2:] = 0                         # padded rows: the mask must still hold
    return {"input_ids": tf.constant(ids), "input_mask": tf.constant(mask), "segment_ids": tf.zeros_like(ids)}


def test_same_weight_names_in_both_precisions():
    f32, bf16 = twin_models()
    assert list(modeling.variable_map(f32)) == list(modeling.variable_map(bf16))
    assert all(v.dtype == "float32" for v in bf16.weights)


def test_bf16_inference_and_training_forward_follow_float32():
    f32, bf16 = twin_models()
    b = batch()
    reference = f32(b, training=False).numpy()
    for training in (False, True):           # the fused inference graph and the training graph (dropout off)
        for layer in bf16._flatten_layers():
            if isinstance(layer, modeling.Dropout):
                layer.rate = 0.0
        out = tf.function(lambda inputs: bf16(inputs, training=training))(b).numpy()
        assert out.dtype == np.float32
        # bfloat16 keeps 8 bits of mantissa: within a few percent of the logits' spread, never identical
        error = np.abs(out - reference).max() / np.abs(reference).max()
        assert 0 < error < 0.05, (training, error)
        assert (out.argmax(-1) == reference.argmax(-1)).mean() > 0.9


def test_bf16_gradients_follow_float32():
    f32, bf16 = twin_models()
    b = batch()
    labels = tf.constant(np.random.default_rng(2).integers(0, 5, (6, 24)).astype(np.int32))
    grads = []
    for model in (f32, bf16):
        for layer in model._flatten_layers():
            if isinstance(layer, modeling.Dropout):
                layer.rate = 0.0
        with tf.GradientTape() as tape:
            logits = model(b, training=True)
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))
        grads.append([g for g in tape.gradient(loss, model.trainable_variables)])
    for name, g32, g16 in zip([v.path for v in f32.trainable_variables], *grads):
        g32, g16 = tf.convert_to_tensor(g32).numpy(), tf.convert_to_tensor(g16).numpy()
        if name.endswith("key/bias"):      # softmax ignores a shift of every score: zero up to round-off
            continue
        assert g16.dtype == np.float32
        assert np.linalg.norm(g16 - g32) / np.linalg.norm(g32) < 0.05, name


def op_counts(model, b):
    graph = tf.function(lambda inputs: model(inputs, training=False)).get_concrete_function(b).graph
    counts = collections.Counter()
    for op in graph.get_operations():
        dtype = op.get_attr("T").name if "T" in op.node_def.attr else ""
        counts[(op.type, dtype)] += 1
    return counts


def test_bf16_inference_graph_has_the_fusable_patterns():
    _, bf16 = twin_models()
    counts = op_counts(bf16, batch())
    layers = config().num_hidden_layers
    # per block: one query/key/value product, the attention output, the intermediate, the output: all bfloat16
    # 2-D MatMuls, and the pooler's (the classifier's own product is float32)
    assert counts[("MatMul", "bfloat16")] == 4 * layers + 1 and counts[("MatMul", "float32")] == 1
    # the bias of the query/key/value product and of the GELU layer as BiasAdd in bfloat16 (oneDNN fuses
    # MatMul + BiasAdd (+ Gelu)); the GELU itself as tf.nn.gelu's exact form (Erfc) in bfloat16
    assert counts[("BiasAdd", "bfloat16")] == 2 * layers
    assert counts[("Erfc", "bfloat16")] == layers and counts[("Erf", "float32")] == 0
    # two attention products in bfloat16, softmax in float32
    assert counts[("BatchMatMulV2", "bfloat16")] == 2 * layers
    assert counts[("Softmax", "float32")] == layers
    # LayerNorm as moments + batch_normalization (not Keras's form, which has a Neg): one Rsqrt each
    assert counts[("Rsqrt", "float32")] == 2 * layers + 1 and counts[("Neg", "float32")] == 0


def test_training_graph_sums_bias_gradients_in_float32():
    _, bf16 = twin_models()
    graph = tf.function(lambda inputs: bf16(inputs, training=True)).get_concrete_function(batch()).graph
    assert not [op for op in graph.get_operations() if op.type == "BiasAdd"]
    # six products a block (query, key and value apart: their gradients are faster so) and the pooler's
    products = sum(op.type == "MatMul" and op.get_attr("T") == tf.bfloat16 for op in graph.get_operations())
    assert products == 6 * config().num_hidden_layers + 1


def test_float32_graph_unchanged_by_the_bf16_path():
    f32, _ = twin_models()
    counts = op_counts(f32, batch())
    assert not any(dtype == "bfloat16" for _, dtype in counts)
    assert counts[("Softmax", "float32")] == config().num_hidden_layers


def test_mixed_float16_inference_still_builds_and_runs():
    # the GPU policy (float16 compute, float32 weights): LayerNorm's inference form reads its weights in float32
    keras.mixed_precision.set_dtype_policy("mixed_float16")
    modeling.set_matmul_dtype(None)
    model = modeling.build(modeling.BertClassifier(config(), 5, per_token=True))
    out = model(batch(), training=False)
    assert out.dtype == tf.float32 and np.all(np.isfinite(out.numpy()))


def test_fixed_weights_applies_to_bfloat16_products_only_and_restores_the_environment(monkeypatch):
    monkeypatch.delenv(modeling.FROZEN_WEIGHTS, raising=False)
    modeling.set_matmul_dtype(None)
    with modeling.fixed_weights() as applies:
        assert not applies and modeling.FROZEN_WEIGHTS not in os.environ
    modeling.set_matmul_dtype("bfloat16")
    try:
        with modeling.fixed_weights() as applies:
            assert applies and os.environ[modeling.FROZEN_WEIGHTS] == "1"
        assert os.environ[modeling.FROZEN_WEIGHTS] == "0"          # what TensorFlow reads as unset
    finally:
        modeling.set_matmul_dtype(None)


def test_inference_with_fixed_weights_gives_the_same_outputs():
    """The cached weight layouts change where the weights are read from, never the arithmetic: the same model
    predicts the same logits, bit for bit, with functions first run inside fixed_weights() and outside it."""
    _, bf16 = twin_models()
    b = batch()
    outside = tf.function(lambda inputs: bf16(inputs, training=False))(b).numpy()
    with modeling.fixed_weights():
        infer = tf.function(lambda inputs: bf16(inputs, training=False))
        inside = [infer(b).numpy() for _ in range(2)]
    modeling.set_matmul_dtype(None)
    np.testing.assert_array_equal(inside[0], outside)
    np.testing.assert_array_equal(inside[1], outside)
