"""The BERT encoder and its heads, as Keras 3 layers whose weights carry Google's checkpoint names.

Shapes: B = batch, T = sequence length, H = hidden size, N = attention heads, D = H / N, V = vocabulary,
L = number of labels. Every layer records the Google scope of its weights (``bert/encoder/layer_3/attention/
self/query``), and ``variable_map(model)`` returns {google_name: variable}; loading any checkpoint is a lookup
in that map (see biobert.checkpoints).
"""
import contextlib
import math
import os

import keras
import tensorflow as tf
from keras import ops

from biobert.config import BertConfig


def _init(config):
    return keras.initializers.TruncatedNormal(stddev=config.initializer_range)


class Dropout(keras.layers.Dropout):
    """Keras' Dropout with masks that differ between replicas and workers.

    The layer's SeedGenerator (saved with checkpoints, so a resumed run draws the same masks) gives one seed
    pair (s, c) per call. Under a strategy with n replicas in sync, replica r draws with (s, c * n + r): every
    replica and every step its own mask, and the same masks again for the same seed, replica count and step.
    One replica (n = 1) draws exactly Keras' masks.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._convert_input_args = False      # drops in the input's dtype (bfloat16 activations stay bfloat16)

    def call(self, inputs, training=False):
        if not training or self.rate <= 0:
            return inputs
        seed = self.seed_generator.next()
        context = tf.distribute.get_replica_context()
        replicas = context.num_replicas_in_sync if context is not None else 1
        if replicas > 1:
            replica = tf.cast(context.replica_id_in_sync_group, seed.dtype)
            seed = tf.stack([seed[0], seed[1] * replicas + replica])
        if seed.dtype != tf.int32:     # the stateless ops want int32 under XLA (as Keras' backend does)
            seed = tf.cast(tf.math.floormod(seed, tf.int32.max - 1), tf.int32)
        return tf.nn.experimental.stateless_dropout(inputs, rate=self.rate, seed=seed)


def gelu(x):
    """Exact GELU, x * Phi(x) (BERT's 'gelu' in Hugging Face configs)."""
    return 0.5 * x * (1.0 + ops.erf(x / math.sqrt(2.0)))


def gelu_tanh(x):
    """GELU with the tanh approximation (Google's original modeling.py)."""
    return 0.5 * x * (1.0 + ops.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * ops.power(x, 3))))


ACTIVATIONS = {"gelu": gelu, "gelu_new": gelu_tanh, "gelu_pytorch_tanh": gelu_tanh, "gelu_tanh": gelu_tanh,
               "relu": ops.relu, "tanh": ops.tanh, "swish": ops.silu, "silu": ops.silu}


def activation(name):
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ValueError(f"unknown hidden_act {name!r}; known: {sorted(ACTIVATIONS)}") from None


_MATMUL_DTYPE = [None]


def set_matmul_dtype(dtype):
    """Run the matrix products of models built from now on in ``dtype`` (None: each layer's compute dtype).

    A job sets it to its runtime's ``matmul_dtype`` (biobert.job.start_job): "bfloat16" under --amp on a CPU
    with a float32 policy, so that the products (where the time goes) run in bfloat16 while weights, biases,
    residual sums, LayerNorm and softmax stay in float32; in training each dense product returns to float32
    before its bias, in inference the values between products where oneDNN fuses them (the GELU layer,
    query/key/value, attention) stay bfloat16 (see Dense). This keeps gradients closer to float32 than Keras's
    mixed_bfloat16 policy, which rounds every activation and gradient between the products and sums bias
    gradients in bfloat16.
    """
    _MATMUL_DTYPE[0] = dtype


@contextlib.contextmanager
def fixed_weights():
    """Inside: the weights no longer change (evaluation or prediction after any training of this process).

    With bfloat16 products on a CPU, the oneDNN products that TensorFlow first runs inside keep each weight in
    the layout they computed it in at their first call, instead of redoing it every batch
    (TF_ONEDNN_ASSUME_FROZEN_WEIGHTS, read when a product first runs). Such a product keeps its first weights for
    good: use this only for what runs after the last training step. Float32 products are untouched. Yields
    whether it applies.
    """
    if _MATMUL_DTYPE[0] != "bfloat16":
        yield False
        return
    before = os.environ.get(FROZEN_WEIGHTS, "0")       # TensorFlow reads "0" as unset
    os.environ[FROZEN_WEIGHTS] = "1"
    try:
        yield True
    finally:
        os.environ[FROZEN_WEIGHTS] = before


FROZEN_WEIGHTS = "TF_ONEDNN_ASSUME_FROZEN_WEIGHTS"


def matmul_dtype():
    """The dtype set by set_matmul_dtype (None: each layer's compute dtype)."""
    return _MATMUL_DTYPE[0]


def matmul(a, b, dtype):
    """a @ b computed in ``dtype`` (None: as given), returned in a's dtype."""
    if dtype is None or dtype == a.dtype:
        return ops.matmul(a, ops.cast(b, a.dtype))
    return ops.cast(ops.matmul(ops.cast(a, dtype), ops.cast(b, dtype)), a.dtype)


def _rows(x):
    """[..., C] -> [rows, C]: the 2-D form TensorFlow's remapper fuses (MatMul + BiasAdd + Gelu) for oneDNN."""
    return tf.reshape(x, (-1, x.shape[-1]))


def _unrows(y, like):
    """[rows, U] -> like's leading dimensions + [U]."""
    return tf.reshape(y, tf.concat([tf.shape(like)[:-1], tf.shape(y)[-1:]], 0))


class Dense(keras.layers.Dense):
    """keras Dense whose product runs in the matmul dtype set when it was built, and whose bias is added as a
    plain sum in the input's dtype (Keras's BiasAdd has a CPU gradient that sums bfloat16 rows in bfloat16).

    With bfloat16 products on a float32 model (--amp on a CPU): the input is taken as it comes (float32, or
    bfloat16 from the previous product) and rounded to bfloat16 once; in inference an exact-GELU layer is one
    bfloat16 MatMul + BiasAdd + Gelu (the pattern oneDNN runs as one primitive) and returns bfloat16; otherwise the
    product is cast to float32 and the bias added there (so its gradient sums in float32) before the activation.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.matmul_dtype = _MATMUL_DTYPE[0]
        self.bf16 = self.matmul_dtype == "bfloat16"
        if self.bf16:       # a bfloat16 input stays bfloat16 (no round trip via float32); call converts the rest
            self._convert_input_args = False
            self._allow_non_tensor_positional_args = True

    def call(self, inputs, training=None):
        if not self.bf16:
            x = matmul(inputs, self.kernel, self.matmul_dtype) + ops.cast(self.bias, inputs.dtype)
            return self.activation(x) if self.activation is not None else x
        x = _rows(tf.cast(inputs, tf.bfloat16))
        y = tf.matmul(x, tf.cast(self.kernel, tf.bfloat16))
        if training is False and self.activation is gelu:
            y = tf.nn.gelu(tf.nn.bias_add(y, tf.cast(self.bias, tf.bfloat16)), approximate=False)
        else:
            y = tf.cast(y, tf.float32) + self.bias
            if self.activation is not None:
                y = self.activation(y)
        return _unrows(y, inputs)


def dense(units, config, scope, act=None):
    layer = Dense(units, activation=act, kernel_initializer=_init(config), name=scope.split("/")[-1])
    layer.scope = scope
    return layer


class LayerNormalization(keras.layers.LayerNormalization):
    """Keras LayerNormalization over the last axis; in inference written as tf.nn.moments +
    tf.nn.batch_normalization, fewer element-wise ops than Keras's form (whose gradient is the faster one, so
    training keeps it). Same weights (gamma, beta), float32 arithmetic; a bfloat16 input is normalised in float32."""

    def call(self, inputs, training=None):
        if training is not False:       # training (or not said): Keras's form
            return super().call(inputs)
        x = tf.cast(inputs, tf.float32)
        mean, variance = tf.nn.moments(x, axes=[-1], keepdims=True)
        y = tf.nn.batch_normalization(x, mean, variance, offset=tf.cast(self.beta, tf.float32),
                                      scale=tf.cast(self.gamma, tf.float32), variance_epsilon=self.epsilon)
        return tf.cast(y, self.compute_dtype)


def layer_norm(config, scope):
    layer = LayerNormalization(epsilon=config.layer_norm_eps, name="LayerNorm")
    layer.scope = scope + "/LayerNorm"
    return layer


class BertEmbeddings(keras.layers.Layer):
    """Word + position + token-type embeddings, LayerNorm, dropout: ids [B, T] -> [B, T, H]."""

    def __init__(self, config, **kwargs):
        super().__init__(name="embeddings", **kwargs)
        self.config = config
        self.scope = "bert/embeddings"
        self.layer_norm = layer_norm(config, self.scope)
        self.dropout = Dropout(config.hidden_dropout_prob)

    def build(self, input_shape):
        c = self.config
        self.word_embeddings = self.add_weight(
            name="word_embeddings", shape=(c.vocab_size, c.hidden_size), initializer=_init(c))
        self.token_type_embeddings = self.add_weight(
            name="token_type_embeddings", shape=(c.type_vocab_size, c.hidden_size), initializer=_init(c))
        self.position_embeddings = self.add_weight(
            name="position_embeddings", shape=(c.max_position_embeddings, c.hidden_size), initializer=_init(c))
        self.layer_norm.build((None, None, c.hidden_size))

    def call(self, input_ids, segment_ids, training=False):
        length = ops.shape(input_ids)[1]
        x = ops.take(self.word_embeddings, input_ids, axis=0)                       # [B, T, H]
        x = x + ops.take(self.token_type_embeddings, segment_ids, axis=0)
        x = x + ops.expand_dims(self.position_embeddings[:length], 0)
        return self.dropout(self.layer_norm(x), training=training)


class BertSelfAttention(keras.layers.Layer):
    """Multi-head self-attention: x [B, T, H], input_mask [B, T] (1 = token, 0 = padding) -> context [B, T, H]."""

    def __init__(self, config, scope, **kwargs):
        super().__init__(name="self", **kwargs)
        self.num_heads = config.num_attention_heads
        self.head_size = config.hidden_size // config.num_attention_heads
        self.query = dense(config.hidden_size, config, scope + "/query")
        self.key = dense(config.hidden_size, config, scope + "/key")
        self.value = dense(config.hidden_size, config, scope + "/value")
        self.dropout = Dropout(config.attention_probs_dropout_prob)
        self.matmul_dtype = _MATMUL_DTYPE[0]
        if self.matmul_dtype == "bfloat16":
            self._convert_input_args = False

    def _heads(self, x):                                                              # [B, T, H] -> [B, N, T, D]
        batch, length = ops.shape(x)[0], ops.shape(x)[1]
        return ops.transpose(ops.reshape(x, (batch, length, self.num_heads, self.head_size)), (0, 2, 1, 3))

    def call(self, x, input_mask, training=False):
        # 0 where attention is allowed, -10000 where the key is padding: [B, 1, 1, T], float32.
        mask_bias = (1.0 - ops.cast(input_mask, "float32")[:, None, None, :]) * -10000.0
        if self.matmul_dtype == "bfloat16":
            return self._call_bf16(x, mask_bias, training)
        q, k, v = self._heads(self.query(x)), self._heads(self.key(x)), self._heads(self.value(x))
        scores = matmul(q, ops.transpose(k, (0, 1, 3, 2)), self.matmul_dtype) * (1.0 / math.sqrt(self.head_size))
        scores = ops.cast(scores, "float32") + mask_bias                              # [B, N, T, T]
        probs = ops.cast(ops.softmax(scores, axis=-1), self.compute_dtype)
        probs = self.dropout(probs, training=training)
        context = ops.transpose(matmul(probs, v, self.matmul_dtype), (0, 2, 1, 3))    # [B, T, N, D]
        return ops.reshape(context, (ops.shape(x)[0], ops.shape(x)[1], self.num_heads * self.head_size))

    def _call_bf16(self, x, mask_bias, training):
        """Attention with bfloat16 products: query, key and value as one product of the concatenated kernels
        [H, 3H]; scores and probabilities in bfloat16 between the products, the softmax in float32. Returns
        the context in bfloat16 [B, T, H] (the output dense takes it as it is)."""
        if training is not False:     # three products (their gradients are faster so), bias sums in float32
            q, k, v = (self._heads(tf.cast(d(x, training=training), tf.bfloat16))
                       for d in (self.query, self.key, self.value))
            return self._attend(q, k, v, mask_bias, training)
        layers = (self.query, self.key, self.value)
        kernel = tf.cast(tf.concat([d.kernel for d in layers], axis=1), tf.bfloat16)       # [H, 3H]
        bias = tf.concat([d.bias for d in layers], axis=0)                                  # [3H]
        y = tf.matmul(_rows(tf.cast(x, tf.bfloat16)), kernel)                              # [B*T, 3H]
        y = tf.nn.bias_add(y, tf.cast(bias, tf.bfloat16))
        batch, length = tf.shape(x)[0], tf.shape(x)[1]
        y = tf.transpose(tf.reshape(y, (batch, length, 3, self.num_heads, self.head_size)), (2, 0, 3, 1, 4))
        return self._attend(y[0], y[1], y[2], mask_bias, training)

    def _attend(self, q, k, v, mask_bias, training):
        batch, length = tf.shape(q)[0], tf.shape(q)[2]
        scores = tf.cast(tf.matmul(q, k, transpose_b=True), tf.float32) * (1.0 / math.sqrt(self.head_size))
        probs = tf.cast(tf.nn.softmax(scores + mask_bias, axis=-1), tf.bfloat16)
        probs = self.dropout(probs, training=training)
        context = tf.transpose(tf.matmul(probs, v), (0, 2, 1, 3))                           # [B, T, N, D]
        return tf.reshape(context, (batch, length, self.num_heads * self.head_size))


class BertLayer(keras.layers.Layer):
    """One transformer block (post-LayerNorm, as BERT): [B, T, H] -> [B, T, H]."""

    def __init__(self, config, index, **kwargs):
        super().__init__(name=f"layer_{index}", **kwargs)
        scope = f"bert/encoder/layer_{index}"
        self.attention = BertSelfAttention(config, scope + "/attention/self")
        self.attention_output = dense(config.hidden_size, config, scope + "/attention/output/dense")
        self.attention_norm = layer_norm(config, scope + "/attention/output")
        self.intermediate = dense(config.intermediate_size, config, scope + "/intermediate/dense",
                                  act=activation(config.hidden_act))
        self.output_dense = dense(config.hidden_size, config, scope + "/output/dense")
        self.output_norm = layer_norm(config, scope + "/output")
        self.dropout1 = Dropout(config.hidden_dropout_prob)
        self.dropout2 = Dropout(config.hidden_dropout_prob)

    def weight_layers(self):
        """The layers holding this block's weights, in the order a call uses (and so builds) them."""
        return [self.attention.query, self.attention.key, self.attention.value, self.attention_output,
                self.attention_norm, self.intermediate, self.output_dense, self.output_norm]

    def call(self, x, input_mask, training=False):
        attended = self.attention_output(self.attention(x, input_mask, training=training))
        x = self.attention_norm(x + ops.cast(self.dropout1(attended, training=training), x.dtype))
        out = self.output_dense(self.intermediate(x))
        return self.output_norm(x + ops.cast(self.dropout2(out, training=training), x.dtype))


class BertModel(keras.layers.Layer):
    """The encoder: (input_ids, input_mask, segment_ids) [B, T] -> (sequence_output [B, T, H], pooled [B, H])."""

    def __init__(self, config: BertConfig, **kwargs):
        super().__init__(name="bert", **kwargs)
        self.config = config
        self.embeddings = BertEmbeddings(config)
        self.encoder_layers = [BertLayer(config, i) for i in range(config.num_hidden_layers)]
        self.pooler = dense(config.hidden_size, config, "bert/pooler/dense", act="tanh")

    def call(self, input_ids, input_mask, segment_ids, training=False):
        x = self.embeddings(input_ids, segment_ids, training=training)
        input_mask = ops.cast(input_mask, "int32")
        for layer in self.encoder_layers:
            x = layer(x, input_mask, training=training)
        pooled = self.pooler(x[:, 0])
        return x, pooled


class ClassifierHead(keras.layers.Layer):
    """Dropout + ``output_weights`` [L, H] / ``output_bias`` [L], as Google's run_classifier / BioBERT run_ner.

    features [..., H] -> logits [..., L] (float32).
    """

    def __init__(self, num_labels, config, dropout=0.1, **kwargs):
        super().__init__(name="classifier", **kwargs)
        self.num_labels = num_labels
        self.config = config
        self.scope = ""
        self.dropout = Dropout(dropout)

    def build(self, input_shape):
        self.output_weights = self.add_weight(
            name="output_weights", shape=(self.num_labels, self.config.hidden_size),
            initializer=keras.initializers.TruncatedNormal(stddev=0.02))    # Google's
        self.output_bias = self.add_weight(name="output_bias", shape=(self.num_labels,), initializer="zeros")

    def call(self, features, training=False):
        features = self.dropout(ops.cast(features, self.compute_dtype), training=training)
        logits = ops.matmul(features, ops.transpose(self.output_weights)) + self.output_bias
        return ops.cast(logits, "float32")


class PretrainingHeads(keras.layers.Layer):
    """Masked-LM head tied to the word embeddings, and the next-sentence head (Google's ``cls/...`` names).

    sequence_output [B, T, H], pooled [B, H], masked_lm_positions [B, P] ->
    (mlm_logits [B, P, V], nsp_logits [B, 2]), float32.
    """

    def __init__(self, config, embeddings: BertEmbeddings, **kwargs):
        super().__init__(name="cls", **kwargs)
        self.config = config
        self.embeddings = embeddings
        self.transform = dense(config.hidden_size, config, "cls/predictions/transform/dense",
                               act=activation(config.hidden_act))
        self.transform_norm = layer_norm(config, "cls/predictions/transform")
        self.matmul_dtype = _MATMUL_DTYPE[0]

    def build(self, input_shape):
        c = self.config
        self.mlm_scope, self.nsp_scope = "cls/predictions", "cls/seq_relationship"
        self.mlm_bias = self.add_weight(name="output_bias", shape=(c.vocab_size,), initializer="zeros")
        self.nsp_weights = self.add_weight(name="output_weights", shape=(2, c.hidden_size), initializer=_init(c))
        self.nsp_bias = self.add_weight(name="output_bias", shape=(2,), initializer="zeros")

    def call(self, sequence_output, pooled, masked_lm_positions):
        gathered = ops.take_along_axis(sequence_output, ops.expand_dims(masked_lm_positions, -1), axis=1)
        h = self.transform_norm(self.transform(gathered))                                  # [B, P, H]
        word_embeddings = ops.cast(self.embeddings.word_embeddings, h.dtype)
        mlm_logits = matmul(h, ops.transpose(word_embeddings), self.matmul_dtype) + ops.cast(self.mlm_bias, h.dtype)
        nsp_logits = ops.matmul(pooled, ops.transpose(ops.cast(self.nsp_weights, pooled.dtype)))
        nsp_logits = nsp_logits + ops.cast(self.nsp_bias, pooled.dtype)
        return ops.cast(mlm_logits, "float32"), ops.cast(nsp_logits, "float32")


class BertClassifier(keras.Model):
    """BERT + a classifier over every token (``per_token=True``, NER) or over the pooled [CLS] (RE).

    inputs: dict with input_ids, input_mask, segment_ids [B, T] -> logits [B, T, L] or [B, L].
    """

    def __init__(self, config, num_labels, per_token, **kwargs):
        super().__init__(**kwargs)
        self.config = config
        self.per_token = per_token
        self.bert = BertModel(config)
        self.classifier = ClassifierHead(num_labels, config, dropout=config.hidden_dropout_prob)
        if per_token:
            self.bert.pooler.trainable = False      # unused by a per-token head: no gradient, no update

    def call(self, inputs, training=False):
        sequence_output, pooled = self.bert(inputs["input_ids"], inputs["input_mask"], inputs["segment_ids"],
                                            training=training)
        return self.classifier(sequence_output if self.per_token else pooled, training=training)


class BertPretrainer(keras.Model):
    """BERT + masked-LM and next-sentence heads: inputs dict -> (mlm_logits [B, P, V], nsp_logits [B, 2])."""

    def __init__(self, config, **kwargs):
        super().__init__(**kwargs)
        self.config = config
        self.bert = BertModel(config)
        self.cls = PretrainingHeads(config, self.bert.embeddings)

    def call(self, inputs, training=False):
        sequence_output, pooled = self.bert(inputs["input_ids"], inputs["input_mask"], inputs["segment_ids"],
                                            training=training)
        return self.cls(sequence_output, pooled, inputs["masked_lm_positions"])


def dummy_inputs(model, length=8):
    """A batch of two all-[PAD]-free sequences, enough to build every weight of ``model``."""
    ids = ops.ones((2, length), dtype="int32")
    inputs = {"input_ids": ids, "input_mask": ids, "segment_ids": ops.zeros((2, length), dtype="int32")}
    if isinstance(model, BertPretrainer):
        inputs["masked_lm_positions"] = ops.zeros((2, 2), dtype="int32")
    return inputs


def build(model):
    """Create all of ``model``'s weights; returns the model.

    Each layer that holds weights is built from its input width, in the order a call would build them, then the
    layers around them. Calling an unbuilt model instead would trace it symbolically as a whole to find the
    shapes, then run it, which would lengthen every start.
    """
    c = model.config
    width = (None, None, c.hidden_size)
    bert = model.bert
    bert.embeddings.build(None)
    for layer in bert.encoder_layers:
        for leaf in layer.weight_layers():
            leaf.build((None, None, c.intermediate_size) if leaf is layer.output_dense else width)
    bert.pooler.build((None, c.hidden_size))
    if isinstance(model, BertPretrainer):
        model.cls.transform.build(width)
        model.cls.transform_norm.build(width)
        model.cls.build(None)
    else:
        model.classifier.build(None)
    for layer in bert.encoder_layers:
        layer.attention.build(None)
        layer.build(None)
    bert.build(None)
    model.build(None)
    return model


def variable_map(model):
    """{Google checkpoint name: keras variable} for every weight of a built BertClassifier/BertPretrainer."""
    names = {}
    bert = model.bert
    emb = bert.embeddings
    for var in (emb.word_embeddings, emb.token_type_embeddings, emb.position_embeddings):
        names[f"{emb.scope}/{var.name}"] = var
    leaves = [emb.layer_norm, bert.pooler]
    for layer in bert.encoder_layers:
        leaves += layer.weight_layers()
    if isinstance(model, BertPretrainer):
        cls = model.cls
        leaves += [cls.transform, cls.transform_norm]
        names["cls/predictions/output_bias"] = cls.mlm_bias
        names["cls/seq_relationship/output_weights"] = cls.nsp_weights
        names["cls/seq_relationship/output_bias"] = cls.nsp_bias
    else:
        names["output_weights"] = model.classifier.output_weights
        names["output_bias"] = model.classifier.output_bias
    for leaf in leaves:
        for var in leaf.weights:
            names[f"{leaf.scope}/{var.name}"] = var
    expected = len(model.weights)
    if len(names) != expected:
        raise AssertionError(f"variable_map covers {len(names)} of {expected} weights")
    return names


def dropout_states(model):
    """{``rng/dropout_<i>``: state} of every dropout's random seed generator, in layer order.

    Not weights, but a resumed run needs them to draw the same dropout masks as an uninterrupted one.
    """
    weights = {id(v) for v in model.weights}
    states = [v for v in model.variables if id(v) not in weights and "seed_generator" in v.path]
    return {f"rng/dropout_{i}": v for i, v in enumerate(states)}


def is_bert_variable(name):
    """True for encoder weights (``bert/...``); False for task heads (``output_*``, ``cls/...``)."""
    return name.startswith("bert/")
