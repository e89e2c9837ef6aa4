"""Fine-tuning (and inference) throughput of the shared loop on synthetic batches of fixed shape.

    python benchmarks/finetune_throughput.py --model=minilm --batch=32 --seq=64 --amp --xla
    python benchmarks/finetune_throughput.py --model=base --batch=8 --seq=128 --noamp --noxla

Prints one line per configuration: training sentences/s (median of the timed windows, after warm-up steps
that include tracing and XLA compilation) and inference sentences/s.

Feeds BENCHMARKS.md, "Fine-tuning and pre-training throughput" (the fine-tuning tables) and "Inference throughput".
"""
import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from biobert import batching, defaults, distribution, modeling, training  # noqa: E402
from biobert.config import BertConfig  # noqa: E402
from biobert.dllogger import RunLog  # noqa: E402

CONFIGS = {
    "base": dict(vocab_size=28996, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                 intermediate_size=3072),
    "minilm": dict(vocab_size=30522, hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
                   intermediate_size=1536),
}


class Silent(RunLog):
    def __init__(self):
        super().__init__(None)
        self.windows = []

    def info(self, text):
        pass

    def log(self, step, data, text=None):
        if isinstance(data, dict) and data.get("throughput_train"):
            self.windows.append(data["throughput_train"])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=sorted(CONFIGS), default="minilm")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seq", type=int, default=64)
    parser.add_argument("--amp", action=argparse.BooleanOptionalAction, default=False)
    parser.add_argument("--xla", action=argparse.BooleanOptionalAction, default=False)
    parser.add_argument("--steps", type=int, default=40, help="timed training steps (after 3 warm-up steps)")
    parser.add_argument("--window", type=int, default=5, help="steps per throughput window")
    args = parser.parse_args()

    runtime = distribution.setup(amp=args.amp, use_xla=args.xla, log=lambda *_: None)
    modeling.set_matmul_dtype(runtime.matmul_dtype)
    config = BertConfig(**CONFIGS[args.model])
    rng = np.random.default_rng(0)
    feats = [{"input_ids": rng.integers(1000, config.vocab_size, args.seq).astype(np.int32),
              "segment_ids": np.zeros(args.seq, np.int32),
              "label_ids": rng.integers(1, 7, args.seq).astype(np.int32)} for _ in range(args.batch * 4)]

    def loss_fn(batch, logits):
        ce = keras.losses.sparse_categorical_crossentropy(batch["label_ids"], logits, from_logits=True)
        return tf.reduce_mean(ce)

    warmup = 3
    log = Silent()
    cfg = training.TrainConfig(output_dir="/tmp/finetune_throughput_unused", learning_rate=1e-5,
                               num_train_steps=warmup + args.steps, display_loss_steps=args.window,
                               save_checkpoints_steps=0, use_xla=args.xla, **defaults.FINETUNING)
    trainer = training.Trainer(runtime, lambda: modeling.BertClassifier(config, 7, per_token=True), loss_fn, cfg, log)
    trainer.save = lambda: None                       # nothing to keep
    batches = batching.training_batches(feats, args.batch, args.seq, seed=1)
    trainer.fit(batches)
    train = statistics.median(log.windows[1:] or log.windows)

    batch = batching.pad_batch(feats[: args.batch], args.seq)
    times = []
    with modeling.fixed_weights():                   # as run_ner.py's evaluation and prediction after training
        list(trainer.predict([batch, batch]))          # trace / compile
        for _ in range(10):
            start = time.perf_counter()
            list(trainer.predict([batch]))
            times.append(time.perf_counter() - start)
    infer = args.batch / statistics.median(times)
    print(f"model={args.model} batch={args.batch} seq={args.seq} amp={args.amp} xla={args.xla} "
          f"precision={runtime.precision}: train {train:.2f} sentences/s, inference {infer:.1f} sentences/s")


if __name__ == "__main__":
    main()
