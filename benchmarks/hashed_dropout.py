"""Both ChemProt trainings with the same dropout masks: each mask bit a hash of where and when it is drawn.

    python benchmarks/hashed_dropout.py ours --hash_seed=N <benchmarks/replay_run_re.py's flags> --group_by_length
    /tmp/peer-venv/bin/python benchmarks/hashed_dropout.py peer --hash_seed=N <peer_hf_chemprot.py's flags> --replay=X

Ours (Keras) and the Hugging Face peer (PyTorch) draw dropout from different random streams, so two runs on
the same batches and classifier initialisation (``--replay``) still differ in every mask. Here both sides
replace their dropout by one deterministic rule: the element at (site, step, row, coordinates) is dropped
when a 32-bit integer hash of

  * ``--hash_seed``,
  * the site: the dropout's place in the forward pass (embeddings, then each layer's attention
    probabilities, attention output and feed-forward output, then the classifier), counted per call,
  * the training step (1, 2, ... : one forward pass with dropout per step, so ours runs in one piece:
    ``--group_by_length`` under a replay keeps the replay's batches and computes each in one part),
  * the row's content (its unpadded token ids), so that row order and padding do not matter,
  * the element's coordinates within the row: (token, unit) for [B, T, H]; (head, query, key) for attention
    probabilities [B, N, T, T], laid out as if T were 128; (unit) for the pooled [B, H],

has its low 24 bits under ``rate * 2**24``; kept elements are scaled by 1 / (1 - rate), as both libraries do.
The same data, initialisation and masks on both sides leave only the implementations (and rounding) to
differ: compare the weights along training with ckpt_to_hf.py and weights_apart.py.

The hash is computed in int64 arithmetic whose every product stays below 2**63, so numpy, TensorFlow and
PyTorch give the same bits (``keep_mask`` below is the numpy reference the tests hold the TensorFlow
version to).
"""
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
LOW32 = 0xFFFFFFFF
MULTIPLIER = 0x45D9F3B          # < 2**27: a product with a 32-bit value stays below 2**59
ATTENTION_WIDTH = 128           # attention coordinates laid out as if every sequence had 128 positions
UNIFORM_BITS = 24


def mix(x, xor, shift, band):
    """A 32-bit integer finaliser on int64 values in [0, 2**32): two multiply-xorshift rounds."""
    x = band(xor(x, shift(x, 16)) * MULTIPLIER, LOW32)
    x = band(xor(x, shift(x, 16)) * MULTIPLIER, LOW32)
    return xor(x, shift(x, 16))


# The rule, once, over a backend's (xor, right shift, and): numpy, TensorFlow or PyTorch.

def row_keys(ids, mask, positions, ops, total):
    """[B] keys of rows of int64 token ids [B, T]: the hash of (id, position) summed (``total``) over real tokens."""
    token = mix(ids * 131 + positions + 1, *ops) * mask
    return mix(ops[2](total(token), LOW32), *ops)


def site_key(seed, site, step, ops):
    """The key of one dropout site at one step (``step`` an int, or a tensor of the backend of ``ops``)."""
    key = mix(np.int64(seed & LOW32), *ops)
    key = mix(ops[0](key, np.int64(site)), *ops)
    return mix(ops[0](key, step), *ops)


def keep_from_keys(key, rows, index, rate, ops, column):
    """Keep mask from the site key, the rows' keys [B] (made [B, 1, ...] by ``column``) and the coordinates
    [1, ...] of one row's elements (broadcast over the rows)."""
    xor, _, band = ops
    bits = mix(xor(column(mix(xor(key, rows), *ops)), mix(index, *ops)), *ops)
    return band(bits, (1 << UNIFORM_BITS) - 1) >= int(round(rate * (1 << UNIFORM_BITS)))


NUMPY_OPS = (np.bitwise_xor, np.right_shift, np.bitwise_and)


def coordinates(shape, arange):
    """int64 coordinates [1, ...] of the elements of one row of a [B, ...] tensor (see the module docstring);
    ``shape`` a sequence of sizes (ints or scalar tensors), ``arange`` the backend's int64 range."""
    if len(shape) == 2:
        return arange(shape[1])[None, :]
    if len(shape) == 3:
        return arange(shape[1])[None, :, None] * shape[2] + arange(shape[2])[None, None, :]
    if len(shape) == 4:
        n, q, k = (arange(s) for s in shape[1:])
        return ((n[:, None, None] * ATTENTION_WIDTH + q[None, :, None]) * ATTENTION_WIDTH + k[None, None, :])[None]
    raise ValueError(f"no dropout coordinates for rank {len(shape)}")


def coordinates_np(shape):
    return coordinates(shape, lambda size: np.arange(size, dtype=np.int64))


def column_of(rank, reshape):
    """[B] -> [B, 1, ...] of ``rank`` dimensions with the backend's ``reshape``."""
    return lambda rows: reshape(rows, (-1,) + (1,) * (rank - 1))


def keep_mask(shape, input_ids, input_mask, seed, site, step, rate):
    """numpy reference: the boolean keep mask of a dropout of ``rate`` on a tensor of ``shape`` = [B, ...]."""
    ids = input_ids.astype(np.int64)
    positions = np.arange(ids.shape[1], dtype=np.int64)[None, :]
    rows = row_keys(ids, input_mask.astype(np.int64), positions, NUMPY_OPS, lambda t: t.sum(-1))
    return keep_from_keys(site_key(seed, site, np.int64(step), NUMPY_OPS), rows, coordinates_np(shape), rate,
                          NUMPY_OPS, column_of(len(shape), np.reshape))


# ---------------------------------------------------------------------------------------------------- ours

def _tf_ops():
    import tensorflow as tf
    return tf.bitwise.bitwise_xor, tf.bitwise.right_shift, tf.bitwise.bitwise_and


def tf_keep_mask(x, rows_key, seed, site, step, rate):
    """TensorFlow version of ``keep_mask`` for a tensor ``x`` [B, ...], rows' keys [B] int64, step int64."""
    import tensorflow as tf
    rank = len(x.shape)
    sizes = tf.shape(x, out_type=tf.int64)
    index = coordinates([sizes[i] for i in range(rank)], tf.range)
    ops = _tf_ops()
    return keep_from_keys(site_key(seed, site, tf.cast(step, tf.int64), ops), rows_key, index, rate, ops,
                          column_of(rank, tf.reshape))


def tf_row_keys(input_ids, input_mask):
    import tensorflow as tf
    ids = tf.cast(input_ids, tf.int64)
    positions = tf.range(tf.shape(ids, out_type=tf.int64)[1])[None, :]
    return row_keys(ids, tf.cast(input_mask, tf.int64), positions, _tf_ops(), lambda t: tf.reduce_sum(t, -1))


class _Context:
    seed = 0
    rows = None        # the current forward pass's row keys
    step = None        # its step (a tensor on our side, an int on the peer's)
    site = 0


def patch_keras(seed):
    """Our BertClassifier and keras Dropout draw their training masks from the hash (one model call a step)."""
    import keras
    import tensorflow as tf

    from biobert import modeling
    _Context.seed = seed
    counter = tf.Variable(0, dtype=tf.int64, trainable=False, name="hashed_dropout_step")
    model_call = modeling.BertClassifier.call

    def call(self, inputs, training=False):
        if training:
            _Context.rows = tf_row_keys(inputs["input_ids"], inputs["input_mask"])
            _Context.step = counter.assign_add(1)
            _Context.site = 0
        return model_call(self, inputs, training=training)

    def dropout_call(self, inputs, training=False):
        if not training or self.rate == 0:
            return inputs
        site, _Context.site = _Context.site, _Context.site + 1
        keep = tf_keep_mask(inputs, _Context.rows, _Context.seed, site, _Context.step, self.rate)
        return tf.where(keep, inputs / (1.0 - self.rate), tf.zeros_like(inputs))

    modeling.BertClassifier.call = call
    keras.layers.Dropout.call = dropout_call
    return counter


def main_ours(argv):
    import replay_run_re
    counter = patch_keras(_Context.seed)
    print(f"hashed dropout, seed {_Context.seed} (one model call per step; counter {counter.name})", flush=True)
    return replay_run_re.main(argv)


# ---------------------------------------------------------------------------------------------------- peer

def _torch_ops():
    import torch
    return torch.bitwise_xor, torch.bitwise_right_shift, torch.bitwise_and


def torch_keep_mask(shape, rows_key, seed, site, step, rate):
    """PyTorch version of ``keep_mask``: rows' keys [B] int64 (``torch_row_keys``), step an int."""
    import torch
    key = torch.tensor(int(site_key(seed, site, np.int64(step), NUMPY_OPS)), dtype=torch.int64)
    index = torch.from_numpy(coordinates_np(tuple(shape)))
    return keep_from_keys(key, rows_key, index, rate, _torch_ops(), column_of(len(shape), torch.reshape))


def torch_row_keys(input_ids, attention_mask):
    import torch
    ids = input_ids.to(torch.int64)
    positions = torch.arange(ids.shape[1], dtype=torch.int64)[None, :]
    return row_keys(ids, attention_mask.to(torch.int64), positions, _torch_ops(), lambda t: t.sum(-1))


def patch_torch(seed):
    """The peer's model (eager attention) and torch's functional dropout draw their masks from the hash."""
    import torch
    import torch.nn.functional as functional
    import transformers

    import peer_hf_chemprot
    _Context.seed = seed
    original_dropout = functional.dropout

    def dropout(input, p=0.5, training=True, inplace=False):
        if not training or p == 0:
            return input
        if _Context.rows is None:
            return original_dropout(input, p, training, inplace)
        site, _Context.site = _Context.site, _Context.site + 1
        keep = torch_keep_mask(input.shape, _Context.rows, seed, site, _Context.step, p)
        return torch.where(keep, input / (1.0 - p), torch.zeros_like(input))

    functional.dropout = dropout
    loader = peer_hf_chemprot.BertForSequenceClassification

    class Loader:
        @staticmethod
        def from_pretrained(*args, **kwargs):
            model = loader.from_pretrained(*args, attn_implementation="eager", **kwargs)
            forward = model.forward

            def hashed_forward(*f_args, **f_kwargs):
                if model.training:
                    _Context.rows = torch_row_keys(f_kwargs["input_ids"], f_kwargs["attention_mask"])
                    _Context.step = (_Context.step or 0) + 1
                    _Context.site = 0
                return forward(*f_args, **f_kwargs)
            model.forward = hashed_forward
            return model

    peer_hf_chemprot.BertForSequenceClassification = Loader
    print(f"hashed dropout, seed {seed}; transformers {transformers.__version__}, eager attention", flush=True)


def main_peer(argv):
    import peer_hf_chemprot
    patch_torch(_Context.seed)
    return peer_hf_chemprot.main(argv)


def split_hash_seed(argv):
    """(hash seed, argv without --hash_seed=N); exits when it is missing or not an integer."""
    rest, seed = [], None
    for arg in argv:
        if arg.startswith("--hash_seed="):
            try:
                seed = int(arg.split("=", 1)[1])
            except ValueError:
                sys.exit(f"error: --hash_seed: not an integer: {arg.split('=', 1)[1]!r}")
        else:
            rest.append(arg)
    if seed is None:
        sys.exit("error: --hash_seed=N is required")
    return seed, rest


if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in ("ours", "peer"):
        sys.exit(__doc__.split("\n\n")[1] + "\nerror: first argument: ours or peer")
    side = sys.argv[1]
    _Context.seed, rest = split_hash_seed(sys.argv[2:])
    sys.path.insert(0, HERE)
    if side == "peer":
        sys.exit(main_peer(rest))
    sys.path.insert(0, os.path.dirname(HERE))
    import replay_run_re  # noqa: F401  (defines its flags and run_re.py's)
    from absl import app
    app.run(main_ours, argv=[sys.argv[0]] + rest)
