"""Investigation (2026-12-04): does a variant of our Dense layer or a thread/oneDNN setting speed up MiniLM?

    python benchmarks/step_variants.py base|2d|2dgelu BATCH SEQ train|infer
    TF_ENABLE_ONEDNN_OPTS=0 python benchmarks/step_variants.py base 32 64 train      # oneDNN off
    INTER=1 python benchmarks/step_variants.py base 32 64 train                     # one inter-op thread
    DROP=0 python benchmarks/step_variants.py base 32 64 train                      # dropout off

2d: the Dense product as a 2-D MatMul + tf.nn.bias_add; 2dgelu: also tf.nn.gelu (the patterns oneDNN's remapper
fuses). Prints sentences/s (median of 7 windows of 5 calls). The answer is in BENCHMARKS.md ("Why training is at
parity"); nothing paid.
"""
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from biobert import modeling  # noqa: E402
from biobert.config import BertConfig  # noqa: E402


def main(variant, batch, seq, mode):
    if os.environ.get("INTER"):
        tf.config.threading.set_inter_op_parallelism_threads(int(os.environ["INTER"]))
    drop = float(os.environ.get("DROP", 0.1))
    cfg = BertConfig(vocab_size=30522, hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
                     intermediate_size=1536, hidden_act="gelu", hidden_dropout_prob=drop,
                     attention_probs_dropout_prob=drop)
    if variant in ("2d", "2dgelu"):
        def call(self, inputs, training=None):
            shape = tf.shape(inputs)
            x = tf.nn.bias_add(tf.matmul(tf.reshape(inputs, (-1, inputs.shape[-1])), self.kernel), self.bias)
            if self.activation is modeling.gelu and variant == "2dgelu":
                x = tf.nn.gelu(x, approximate=False)
            elif self.activation is not None:
                x = self.activation(x)
            return tf.reshape(x, tf.concat([shape[:-1], [self.units]], 0))
        modeling.Dense.call = call

    model = modeling.BertClassifier(cfg, 7, per_token=True)
    ids = np.random.randint(1000, 20000, size=(batch, seq)).astype("int32")
    x = {"input_ids": tf.constant(ids), "input_mask": tf.ones_like(ids), "segment_ids": tf.zeros_like(ids)}
    model(x)
    optimizer = keras.optimizers.Adam(1e-5)

    @tf.function
    def infer(x):
        return model(x, training=False)

    @tf.function
    def step(x):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.cast(model(x, training=True), tf.float32) ** 2)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    fn = step if mode == "train" else infer
    for _ in range(3):
        fn(x)
    times = []
    for _ in range(7):
        began = time.perf_counter()
        for _ in range(5):
            result = fn(x)
        np.asarray(result)
        times.append((time.perf_counter() - began) / 5)
    print(variant, batch, seq, mode, f"{batch / statistics.median(times):.1f} sentences/s")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
