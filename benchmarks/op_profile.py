"""Per-op time of one MiniLM training step and one inference batch (fixed shape), from TensorFlow's profiler.

    python benchmarks/op_profile.py --amp            # bfloat16 path (on a CPU with bfloat16 arithmetic)
    python benchmarks/op_profile.py --no-amp         # float32

Runs the shared Trainer's compiled steps on synthetic batches (as benchmarks/finetune_throughput.py), traces
--steps training steps and --steps inference batches with tf.profiler, and prints for each phase a table of
the TensorFlow op types that took the most time (summed over both threads' executor events, per step), with the
phase's wall time per step. Op time summed over threads can exceed wall time (two cores work in parallel).
Feeds BENCHMARKS.md, "bfloat16 on AMX: where the time goes".
"""
import argparse
import collections
import glob
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorflow.tsl.profiler.protobuf import xplane_pb2  # noqa: E402

from biobert import batching, distribution, modeling, training  # noqa: E402
from biobert.config import BertConfig  # noqa: E402
from biobert.dllogger import RunLog  # noqa: E402

# events that wrap the ops (a function's run, the executor's process loop), not ops themselves
WRAPPERS = {"Process", "Run", "Execute", "Start", "ExecuteAsyncOnStream", "Instantiate"}
MINILM = dict(vocab_size=30522, hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536)


def op_times(logdir):
    """{op type: microseconds} summed over the host plane's TensorFlow op events of the trace in ``logdir``."""
    path = sorted(glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True))[-1]
    space = xplane_pb2.XSpace()
    with open(path, "rb") as handle:
        space.ParseFromString(handle.read())
    totals = collections.Counter()
    for plane in space.planes:
        if not plane.name.startswith("/host:CPU"):
            continue
        for line in plane.lines:
            for event in line.events:
                name = plane.event_metadata[event.metadata_id].name
                # executor op events are named "node_name:OpType"; skip the trace's own markers
                if ":" not in name or name.startswith(("Trace", "EagerExecute", "$")):
                    continue
                kind = name.rsplit(":", 1)[1]
                if not kind or kind in WRAPPERS or not (kind[0].isupper() or kind.startswith("_")):
                    continue
                totals[kind] += event.duration_ps / 1e6
    return totals


def profile(what, fn, steps, top):
    fn()
    fn()
    logdir = tempfile.mkdtemp(prefix="op_profile_")
    tf.profiler.experimental.start(logdir)
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    wall = (time.perf_counter() - start) / steps * 1e3
    tf.profiler.experimental.stop()
    totals = op_times(logdir)
    summed = sum(totals.values()) / 1e3 / steps
    print(f"\n{what}: wall {wall:.1f} ms a step; op time summed over threads {summed:.1f} ms a step")
    print(f"| op | ms a step | share of op time |\n|---|---|---|")
    for kind, us in totals.most_common(top):
        print(f"| {kind} | {us / 1e3 / steps:.2f} | {100 * us / sum(totals.values()):.0f} % |")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--amp", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seq", type=int, default=64)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    runtime = distribution.setup(amp=args.amp, log=lambda *_: None)
    modeling.set_matmul_dtype(runtime.matmul_dtype)
    print(f"precision: {runtime.precision}")
    config = BertConfig(**MINILM)
    rng = np.random.default_rng(0)
    feats = [{"input_ids": rng.integers(1000, config.vocab_size, args.seq).astype(np.int32),
              "segment_ids": np.zeros(args.seq, np.int32),
              "label_ids": rng.integers(1, 7, args.seq).astype(np.int32)} for _ in range(args.batch)]

    def loss_fn(batch, logits):
        ce = keras.losses.sparse_categorical_crossentropy(batch["label_ids"], logits, from_logits=True)
        return tf.reduce_mean(ce)

    cfg = training.TrainConfig(output_dir=tempfile.mkdtemp(prefix="op_profile_run_"), learning_rate=1e-5,
                               num_train_steps=10 ** 6, display_loss_steps=10 ** 6, save_checkpoints_steps=0)
    trainer = training.Trainer(runtime, lambda: modeling.BertClassifier(config, 7, per_token=True), loss_fn, cfg,
                               RunLog(None))
    batch = batching.pad_batch(feats, args.seq)
    tensors = {k: tf.convert_to_tensor(v) for k, v in batch.items()}
    stop = tf.constant(0.0)
    profile(f"training step, MiniLM {args.batch}x{args.seq}",
            lambda: [t.numpy() for t in trainer.train_step.apply(tensors, stop)[:1]], args.steps, args.top)
    profile(f"inference batch, MiniLM {args.batch}x{args.seq}",
            lambda: trainer._forward(tensors).numpy(), args.steps, args.top)


if __name__ == "__main__":
    main()
