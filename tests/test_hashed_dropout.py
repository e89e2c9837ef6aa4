"""benchmarks/hashed_dropout.py: dropout masks as a hash of (seed, site, step, row content, coordinates)."""
import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import load_script, tiny_config

from biobert import modeling

hashed = load_script("benchmarks/hashed_dropout.py", "hashed_dropout")


def rows(batch=4, length=10, seed=0):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(3, length + 1, batch)
    mask = (np.arange(length)[None, :] < lengths[:, None]).astype(np.int64)
    return rng.integers(1, 30000, (batch, length)) * mask, mask


@pytest.mark.parametrize("shape", [(4, 7), (4, 10, 6), (4, 3, 10, 10)])
def test_tensorflow_masks_are_the_numpy_reference_bit_for_bit(shape):
    ids, mask = rows()
    expected = hashed.keep_mask(shape, ids, mask, seed=12345, site=3, step=17, rate=0.1)
    keys = hashed.tf_row_keys(tf.constant(ids, tf.int32), tf.constant(mask, tf.int32))
    got = hashed.tf_keep_mask(tf.zeros(shape), keys, 12345, 3, tf.constant(17, tf.int64), 0.1).numpy()
    np.testing.assert_array_equal(got, expected)


def test_masks_follow_row_content_not_its_padding_and_change_with_site_step_and_seed():
    ids, mask = rows()
    base = hashed.keep_mask((4, 10, 16), ids, mask, seed=1, site=2, step=5, rate=0.1)
    large = hashed.keep_mask((4, 10, 1024), ids, mask, seed=1, site=2, step=5, rate=0.1)
    assert abs(large.mean() - 0.9) < 0.01                         # a tenth dropped (sd of the mean 0.0015)
    padded_ids, padded_mask = np.pad(ids, ((0, 0), (0, 6))), np.pad(mask, ((0, 0), (0, 6)))
    padded = hashed.keep_mask((4, 16, 16), padded_ids, padded_mask, seed=1, site=2, step=5, rate=0.1)
    np.testing.assert_array_equal(padded[:, :10], base)           # the same row, more padding: the same mask
    swapped = hashed.keep_mask((4, 10, 16), ids[::-1], mask[::-1], seed=1, site=2, step=5, rate=0.1)
    np.testing.assert_array_equal(swapped, base[::-1])            # rows reordered: their masks follow them
    for other in (dict(seed=2, site=2, step=5), dict(seed=1, site=3, step=5), dict(seed=1, site=2, step=6)):
        changed = hashed.keep_mask((4, 10, 16), ids, mask, rate=0.1, **other)
        assert 0.75 < (changed == base).mean() < 0.9              # independent masks agree on ~0.82


def test_patched_model_drops_by_the_hash_whatever_the_padding(monkeypatch):
    monkeypatch.setattr(keras.layers.Dropout, "call", keras.layers.Dropout.call)      # restored afterwards
    monkeypatch.setattr(modeling.BertClassifier, "call", modeling.BertClassifier.call)
    counter = hashed.patch_keras(seed=7)
    keras.utils.set_random_seed(0)
    model = modeling.build(modeling.BertClassifier(tiny_config(hidden_dropout_prob=0.1,
                                                               attention_probs_dropout_prob=0.1), 3, per_token=False))
    ids, mask = rows(length=12)

    def logits(pad, training=True):
        inputs = {"input_ids": np.pad(ids, ((0, 0), (0, pad))) % 64, "input_mask": np.pad(mask, ((0, 0), (0, pad))),
                  "segment_ids": np.zeros((4, 12 + pad), np.int64)}
        return model(inputs, training=training).numpy()

    first = logits(0)
    assert int(counter.numpy()) == 1
    counter.assign(0)
    np.testing.assert_allclose(logits(8), first, atol=1e-5)      # step 1 again, padded further: the same masks
    second = logits(0)                                           # step 2: other masks
    assert np.abs(second - first).max() > 1e-3
    assert int(counter.numpy()) == 2
    eval_a, eval_b = logits(0, training=False), logits(8, training=False)
    np.testing.assert_allclose(eval_a, eval_b, atol=1e-5)         # no dropout at inference, no step counted
    assert int(counter.numpy()) == 2


def test_hash_seed_is_required_and_an_integer():
    assert hashed.split_hash_seed(["--a=1", "--hash_seed=4", "b"]) == (4, ["--a=1", "b"])
    with pytest.raises(SystemExit, match="required"):
        hashed.split_hash_seed(["--a=1"])
    with pytest.raises(SystemExit, match="not an integer"):
        hashed.split_hash_seed(["--hash_seed=x"])
