"""Loading weights: TF1 name-based checkpoints, Hugging Face safetensors (MiniLM), our own; clear mismatch errors."""
import json
import os

import numpy as np
import pytest
import tensorflow as tf
from helpers import minilm_folder, tiny_config

from biobert import checkpoints, modeling
from biobert.config import BertConfig
from biobert.errors import InputError


def write_tf1_checkpoint(prefix, arrays):
    """Write a checkpoint the way TF1 code (tf.compat.v1.train.Saver in a graph) writes Google's files."""
    graph = tf.Graph()
    with graph.as_default():
        variables = [tf.compat.v1.get_variable(name, initializer=tf.constant(value)) for name, value in arrays.items()]
        saver = tf.compat.v1.train.Saver(variables)
        with tf.compat.v1.Session(graph=graph) as session:
            session.run(tf.compat.v1.global_variables_initializer())
            saver.save(session, prefix, write_meta_graph=False)


def google_arrays(config, rng, with_heads=False, extra=True):
    """Random arrays under Google's names for ``config`` (plus optimizer slots as Google's files have)."""
    model = modeling.build(modeling.BertPretrainer(config) if with_heads else modeling.BertClassifier(config, 3, True))
    arrays = {name: rng.standard_normal(var.shape).astype(np.float32) for name, var in modeling.variable_map(model).items()
              if name.startswith(("bert/", "cls/"))}
    if extra:
        arrays["bert/embeddings/word_embeddings/adam_m"] = np.zeros((config.vocab_size, config.hidden_size), np.float32)
        arrays["global_step"] = np.array(7, dtype=np.int64)
    return arrays


def test_tf1_checkpoint_loads_by_google_names(tmp_path):
    config = tiny_config()
    arrays = google_arrays(config, np.random.default_rng(0), with_heads=True)
    prefix = str(tmp_path / "bert_model.ckpt")
    write_tf1_checkpoint(prefix, arrays)
    # A fine-tuning model takes the encoder; its fresh head is left alone.
    model = modeling.build(modeling.BertClassifier(config, 5, per_token=True))
    variables = modeling.variable_map(model)
    head_before = variables["output_weights"].numpy().copy()
    loaded = checkpoints.load_weights(variables, prefix, log=lambda *_: None)
    assert loaded == {n for n in variables if n.startswith("bert/")}
    for name in loaded:
        np.testing.assert_array_equal(variables[name].numpy(), arrays[name])
    np.testing.assert_array_equal(variables["output_weights"].numpy(), head_before)
    # A pre-training model takes the cls/ heads too, including the MLM bias tied to the embeddings.
    pre = modeling.build(modeling.BertPretrainer(config))
    pre_vars = modeling.variable_map(pre)
    loaded = checkpoints.load_weights(pre_vars, str(tmp_path), log=lambda *_: None)  # folder -> latest
    assert loaded == set(pre_vars)
    np.testing.assert_array_equal(pre_vars["cls/predictions/output_bias"].numpy(), arrays["cls/predictions/output_bias"])


def test_mismatched_checkpoint_lists_variables(tmp_path):
    arrays = google_arrays(tiny_config(), np.random.default_rng(1))
    prefix = str(tmp_path / "model.ckpt-3")
    write_tf1_checkpoint(prefix, arrays)
    wider = modeling.build(modeling.BertClassifier(tiny_config(hidden_size=48, intermediate_size=96), 3, True))
    with pytest.raises(InputError) as err:
        checkpoints.load_weights(modeling.variable_map(wider), prefix, log=lambda *_: None)
    text = str(err.value)
    assert prefix in text and "different shape" in text
    assert "bert/embeddings/word_embeddings: checkpoint [64, 32] vs model [64, 48]" in text
    deeper = modeling.build(modeling.BertClassifier(tiny_config(num_hidden_layers=3), 3, True))
    with pytest.raises(InputError, match=r"missing from the checkpoint:\n  bert/encoder/layer_2/"):
        checkpoints.load_weights(modeling.variable_map(deeper), prefix, log=lambda *_: None)
    with pytest.raises(InputError, match="checkpoint not found"):
        checkpoints.load_weights(modeling.variable_map(deeper), str(tmp_path / "nothing.ckpt"), log=lambda *_: None)


def test_own_checkpoint_round_trip_and_keep_latest(tmp_path):
    model = modeling.build(modeling.BertClassifier(tiny_config(), 4, per_token=False))
    variables = modeling.variable_map(model)
    first = checkpoints.save_checkpoint(str(tmp_path), 10, variables)
    second = checkpoints.save_checkpoint(str(tmp_path), 20, variables)
    assert checkpoints.latest_checkpoint(str(tmp_path)) == second
    assert not os.path.exists(first + ".index") and os.path.exists(second + ".index")
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".tmp")]
    other = modeling.build(modeling.BertClassifier(tiny_config(), 4, per_token=False))
    other_vars = modeling.variable_map(other)
    checkpoints.load_weights(other_vars, str(tmp_path), require_heads=True, log=lambda *_: None)
    for name, var in variables.items():
        np.testing.assert_array_equal(other_vars[name].numpy(), var.numpy())
    # The TF1 reader sees the same Google names.
    names = set(tf.train.load_checkpoint(second).get_variable_to_shape_map())
    assert "bert/encoder/layer_1/attention/self/query/kernel" in names and "output_weights" in names


def _numpy_layer_norm(x, gamma, beta, eps):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


def numpy_bert_forward(weights, cfg, ids, mask):
    """An independent forward pass straight from the Hugging Face tensors (weights stored (out, in))."""
    from math import erf, sqrt

    verf = np.vectorize(erf)
    gelu = lambda x: 0.5 * x * (1.0 + verf(x / sqrt(2.0)))  # noqa: E731
    lin = lambda x, p: x @ weights[p + ".weight"].T + weights[p + ".bias"]  # noqa: E731
    eps = cfg["layer_norm_eps"]
    heads = cfg["num_attention_heads"]
    x = (weights["embeddings.word_embeddings.weight"][ids] + weights["embeddings.token_type_embeddings.weight"][0]
         + weights["embeddings.position_embeddings.weight"][: ids.shape[1]][None])
    x = _numpy_layer_norm(x, weights["embeddings.LayerNorm.weight"], weights["embeddings.LayerNorm.bias"], eps)
    bias = (1.0 - mask[:, None, None, :]) * -10000.0
    batch, length, hidden = x.shape
    d = hidden // heads
    for i in range(cfg["num_hidden_layers"]):
        p = f"encoder.layer.{i}."
        split = lambda t: t.reshape(batch, length, heads, d).transpose(0, 2, 1, 3)  # noqa: E731
        q, k, v = (split(lin(x, p + f"attention.self.{n}")) for n in ("query", "key", "value"))
        scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(d) + bias
        probs = np.exp(scores - scores.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        context = (probs @ v).transpose(0, 2, 1, 3).reshape(batch, length, hidden)
        x = _numpy_layer_norm(x + lin(context, p + "attention.output.dense"),
                              weights[p + "attention.output.LayerNorm.weight"],
                              weights[p + "attention.output.LayerNorm.bias"], eps)
        inter = gelu(lin(x, p + "intermediate.dense"))
        x = _numpy_layer_norm(x + lin(inter, p + "output.dense"), weights[p + "output.LayerNorm.weight"],
                              weights[p + "output.LayerNorm.bias"], eps)
    return x


def test_minilm_safetensors_matches_numpy_forward():
    from safetensors.numpy import load_file

    folder = minilm_folder()
    cfg = json.load(open(os.path.join(folder, "config.json")))
    config = BertConfig.from_json_file(os.path.join(folder, "config.json"))
    assert (config.hidden_size, config.num_hidden_layers, config.vocab_size) == (384, 6, 30522)
    model = modeling.build(modeling.BertClassifier(config, 3, per_token=True))
    checkpoints.load_weights(modeling.variable_map(model), folder, log=lambda *_: None)
    weights = {k: v.astype(np.float64) for k, v in load_file(os.path.join(folder, "model.safetensors")).items()}
    ids = np.array([[101, 1996, 3899, 2003, 1037, 5875, 1012, 102, 0, 0],
                    [101, 25355, 2006, 9043, 2078, 3653, 1012, 2003, 2307, 102]], dtype=np.int32)
    mask = (ids > 0).astype(np.int32)
    ours, _ = model.bert(ids, mask, np.zeros_like(ids), training=False)
    expected = numpy_bert_forward(weights, cfg, ids, mask.astype(np.float64))
    real = mask.astype(bool)
    np.testing.assert_allclose(np.asarray(ours)[real], expected[real], atol=1e-4)


def test_hf_name_mapping():
    assert checkpoints.hf_to_google_name("bert.encoder.layer.11.attention.output.LayerNorm.weight") == \
        ("bert/encoder/layer_11/attention/output/LayerNorm/gamma", False)
    assert checkpoints.hf_to_google_name("encoder.layer.0.intermediate.dense.weight") == \
        ("bert/encoder/layer_0/intermediate/dense/kernel", True)
    assert checkpoints.hf_to_google_name("cls.seq_relationship.weight") == ("cls/seq_relationship/output_weights", False)
    assert checkpoints.hf_to_google_name("embeddings.position_ids") is None


@pytest.mark.parametrize("kind", ["ner", "re", "pretraining"])
def test_build_without_a_call_makes_the_weights_a_call_makes(kind):
    # modeling.build builds each layer from its input width instead of calling the model: the same variables,
    # shapes and (under one seed) initial values as building by a call, and the model runs afterwards.
    import keras

    config = tiny_config()

    def fresh():
        if kind == "pretraining":
            return modeling.BertPretrainer(config)
        return modeling.BertClassifier(config, 5, per_token=kind == "ner")

    keras.utils.set_random_seed(3)
    called = fresh()
    called(modeling.dummy_inputs(called), training=False)
    keras.utils.set_random_seed(3)
    built = modeling.build(fresh())
    assert all(layer.built for layer in built._flatten_layers(include_self=True))
    want, got = modeling.variable_map(called), modeling.variable_map(built)
    assert sorted(want) == sorted(got)
    for name in want:
        np.testing.assert_array_equal(want[name].numpy(), got[name].numpy(), err_msg=name)
    inputs = modeling.dummy_inputs(built)
    for a, b in zip(tf.nest.flatten(called(inputs)), tf.nest.flatten(built(inputs))):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-6)
