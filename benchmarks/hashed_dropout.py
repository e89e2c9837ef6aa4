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


def _np_ops():
    return np.bitwise_xor, np.right_shift, np.bitwise_and


def site_key(seed, site, step, xp_ops):
    xor, shift, band = xp_ops
    key = mix(np.int64(seed) & LOW32, xor, shift, band)
    key = mix(xor(key, np.int64(site)), xor, shift, band)
    return mix(xor(key, np.int64(step)), xor, shift, band)


def coordinates_np(shape):
    """int64 coordinates of every element of a [B, ...] tensor within its row (see the module docstring)."""
    if len(shape) == 2:
        return np.broadcast_to(np.arange(shape[1], dtype=np.int64)[None, :], shape)
    if len(shape) == 3:
        t, h = np.arange(shape[1], dtype=np.int64), np.arange(shape[2], dtype=np.int64)
        return np.broadcast_to(t[None, :, None] * shape[2] + h[None, None, :], shape)
    if len(shape) == 4:
        n, q, k = (np.arange(s, dtype=np.int64) for s in shape[1:])
        index = (n[:, None, None] * ATTENTION_WIDTH + q[None, :, None]) * ATTENTION_WIDTH + k[None, None, :]
        return np.broadcast_to(index[None], shape)
    raise ValueError(f"no dropout coordinates for rank {len(shape)}")


def keep_mask(shape, input_ids, input_mask, seed, site, step, rate):
    """numpy reference: the boolean keep mask of a dropout of ``rate`` on a tensor of ``shape`` = [B, ...]."""
    ops = _np_ops()
    positions = np.broadcast_to(np.arange(input_ids.shape[1], dtype=np.int64), input_ids.shape)
    rows = mix(np.bitwise_and((mix(input_ids.astype(np.int64) * 131 + positions + 1, *ops)
                               * input_mask.astype(np.int64)).sum(-1), LOW32), *ops)
    base = mix(np.bitwise_xor(site_key(seed, site, step, ops), rows), *ops)        # [B]
    base = base.reshape((-1,) + (1,) * (len(shape) - 1))
    bits = mix(np.bitwise_xor(base, mix(coordinates_np(shape), *ops)), *ops)
    return np.bitwise_and(bits, (1 << UNIFORM_BITS) - 1) >= int(round(rate * (1 << UNIFORM_BITS)))


# ---------------------------------------------------------------------------------------------------- ours

def tf_keep_mask(x, rows_key, seed, site, step, rate):
    """TensorFlow version of ``keep_mask`` for a tensor ``x`` [B, ...], rows' keys [B] int64, step int64."""
    import tensorflow as tf
    ops = (tf.bitwise.bitwise_xor, tf.bitwise.right_shift, tf.bitwise.bitwise_and)
    shape = tf.shape(x, out_type=tf.int64)
    rank = len(x.shape)
    if rank == 2:
        index = tf.broadcast_to(tf.range(shape[1])[None, :], shape)
    elif rank == 3:
        index = tf.range(shape[1])[None, :, None] * shape[2] + tf.range(shape[2])[None, None, :]
        index = tf.broadcast_to(index, shape)
    elif rank == 4:
        width = tf.constant(ATTENTION_WIDTH, tf.int64)
        index = ((tf.range(shape[1])[:, None, None] * width + tf.range(shape[2])[None, :, None]) * width
                 + tf.range(shape[3])[None, None, :])
        index = tf.broadcast_to(index[None], shape)
    else:
        raise ValueError(f"no dropout coordinates for rank {rank}")
    key = mix(tf.constant(seed & LOW32, tf.int64), *ops)
    key = mix(tf.bitwise.bitwise_xor(key, tf.constant(site, tf.int64)), *ops)
    key = mix(tf.bitwise.bitwise_xor(key, tf.cast(step, tf.int64)), *ops)
    base = mix(tf.bitwise.bitwise_xor(key, rows_key), *ops)
    base = tf.reshape(base, tf.concat([[-1], tf.ones([rank - 1], tf.int64)], 0))
    bits = mix(tf.bitwise.bitwise_xor(base, mix(index, *ops)), *ops)
    return tf.bitwise.bitwise_and(bits, (1 << UNIFORM_BITS) - 1) >= int(round(rate * (1 << UNIFORM_BITS)))


def tf_row_keys(input_ids, input_mask):
    import tensorflow as tf
    ops = (tf.bitwise.bitwise_xor, tf.bitwise.right_shift, tf.bitwise.bitwise_and)
    ids = tf.cast(input_ids, tf.int64)
    positions = tf.broadcast_to(tf.range(tf.shape(ids, out_type=tf.int64)[1])[None, :], tf.shape(ids, tf.int64))
    token = mix(ids * 131 + positions + 1, *ops) * tf.cast(input_mask, tf.int64)
    return mix(tf.bitwise.bitwise_and(tf.reduce_sum(token, -1), LOW32), *ops)


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
    sys.path.insert(0, HERE)
    import replay_run_re
    from absl import app
    counter = patch_keras(_Context.seed)
    print(f"hashed dropout, seed {_Context.seed} (one model call per step; counter {counter.name})", flush=True)
    return replay_run_re.main(argv)


# ---------------------------------------------------------------------------------------------------- peer

def torch_keep_mask(shape, rows_key, seed, site, step, rate):
    """PyTorch version of ``keep_mask``: rows' keys [B] int64 (``torch_row_keys``), step an int."""
    import torch
    ops = (torch.bitwise_xor, torch.bitwise_right_shift, torch.bitwise_and)
    coords = torch.from_numpy(np.ascontiguousarray(coordinates_np(tuple(shape))))
    key = mix(torch.tensor(seed & LOW32, dtype=torch.int64), *ops)
    key = mix(torch.bitwise_xor(key, torch.tensor(site, dtype=torch.int64)), *ops)
    key = mix(torch.bitwise_xor(key, torch.tensor(step, dtype=torch.int64)), *ops)
    base = mix(torch.bitwise_xor(key, rows_key), *ops).reshape((-1,) + (1,) * (len(shape) - 1))
    bits = mix(torch.bitwise_xor(base, mix(coords, *ops)), *ops)
    return torch.bitwise_and(bits, (1 << UNIFORM_BITS) - 1) >= int(round(rate * (1 << UNIFORM_BITS)))


def torch_row_keys(input_ids, attention_mask):
    import torch
    ops = (torch.bitwise_xor, torch.bitwise_right_shift, torch.bitwise_and)
    ids, mask = input_ids.to(torch.int64), attention_mask.to(torch.int64)
    positions = torch.arange(ids.shape[1], dtype=torch.int64)[None, :].expand_as(ids)
    token = mix(ids * 131 + positions + 1, *ops) * mask
    return mix(torch.bitwise_and(token.sum(-1), LOW32), *ops)


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
    sys.path.insert(0, HERE)
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
    if side == "peer":
        sys.exit(main_peer(rest))
    sys.path.insert(0, HERE)
    sys.path.insert(0, os.path.dirname(HERE))
    import replay_run_re  # noqa: F401  (defines its flags and run_re.py's)
    from absl import app
    app.run(main_ours, argv=[sys.argv[0]] + rest)
