"""Step-by-step equivalence with the Hugging Face peer, our half: K fixed ChemProt batches through run_re.py's model,
loss and optimizer, without dropout, so that the peer (benchmarks/peer_hf_trajectory.py) can replay them.

Writes to --output_dir: batches.npz (the word-piece ids, masks and labels of each batch, and the freshly initialised
classifier weights), losses.json (the loss of each step) and probe_logits.npy (logits of the first batch after the
last step, no dropout). Batches are consecutive train.tsv rows, each padded to its longest row only; the schedule is
run_re.py's (linear warm-up over 10 % of the steps, then linear decay to 0) over K steps.

    python benchmarks/trajectory_ours.py --data_dir=/tmp/chemprot_formatted --model_dir=$M --output_dir=/tmp/traj
    /tmp/peer-venv/bin/python benchmarks/peer_hf_trajectory.py --model_dir=$M --output_dir=/tmp/traj
"""
import dataclasses
import json
import os
import sys

from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from biobert import distribution, finetuning, modeling, relation, training  # noqa: E402
from biobert.config import BertConfig  # noqa: E402
from biobert.tokenization import FullTokenizer  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("data_dir", None, "Folder with the formatted ChemProt train.tsv.")
flags.DEFINE_string("model_dir", None, "Hugging Face BERT folder (config.json, vocab.txt, model.safetensors).")
flags.DEFINE_string("output_dir", None, "Where batches.npz, losses.json and probe_logits.npy are written.")
flags.DEFINE_integer("steps", 30, "Training steps (one batch each).")
flags.DEFINE_integer("batch_size", 32, "Rows per batch.")
flags.DEFINE_float("learning_rate", 1e-4, "Peak learning rate.")
flags.DEFINE_bool("amp", False, "Mixed precision (bfloat16 on CPU) instead of float32.")
flags.mark_flags_as_required(["data_dir", "model_dir", "output_dir"])


class StepLog:
    """The Trainer's log interface; keeps each step's loss."""

    def __init__(self):
        self.losses = []

    def info(self, text):
        print(text, flush=True)

    def log(self, step, data, text=None):
        if isinstance(step, int) and "loss" in data:
            self.losses.append(float(data["loss"]))
        print(text or data, flush=True)


def main(_):
    os.makedirs(FLAGS.output_dir, exist_ok=True)
    runtime = distribution.setup(amp=FLAGS.amp)
    config = dataclasses.replace(BertConfig.from_json_file(os.path.join(FLAGS.model_dir, "config.json")),
                                 hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    tokenizer = FullTokenizer(os.path.join(FLAGS.model_dir, "vocab.txt"), do_lower_case=True)
    rows = FLAGS.steps * FLAGS.batch_size
    examples = relation.read_re_tsv(os.path.join(FLAGS.data_dir, "train.tsv"))[:rows]
    if len(examples) < rows:
        sys.exit(f"error: train.tsv has {len(examples)} rows, {rows} needed")
    features = relation.convert_examples(examples, tokenizer, 128)
    batches = []
    for start in range(0, rows, FLAGS.batch_size):
        chunk = features[start:start + FLAGS.batch_size]
        batches.append(training.pad_batch(chunk, max(len(f["input_ids"]) for f in chunk)))

    log = StepLog()
    train_config = training.TrainConfig(
        output_dir=FLAGS.output_dir, learning_rate=FLAGS.learning_rate, num_train_steps=FLAGS.steps,
        num_warmup_steps=int(FLAGS.steps * 0.1), decay_from_warmup=True, weight_decay_rate=0.01)
    trainer = training.Trainer(
        runtime, lambda: modeling.BertClassifier(config, len(relation.LABELS), per_token=False),
        finetuning.RelationTask().loss_fn, train_config, log)
    trainer.load_weights(FLAGS.model_dir)
    head = trainer.model.classifier
    arrays = {"output_weights": head.output_weights.numpy(), "output_bias": head.output_bias.numpy()}
    for i, batch in enumerate(batches):
        arrays.update({f"input_ids_{i}": batch["input_ids"], f"input_mask_{i}": batch["input_mask"],
                       f"label_{i}": batch["label"]})
    np.savez(os.path.join(FLAGS.output_dir, "batches.npz"), **arrays)

    trainer.fit(iter(batches))
    probe = {k: batches[0][k] for k in ("input_ids", "input_mask", "segment_ids")}
    np.save(os.path.join(FLAGS.output_dir, "probe_logits.npy"), np.asarray(trainer.model(probe, training=False)))
    with open(os.path.join(FLAGS.output_dir, "losses.json"), "w", encoding="utf-8") as handle:
        json.dump({"precision": runtime.precision, "losses": log.losses}, handle)
    print("losses " + " ".join(f"{x:.5f}" for x in log.losses))


if __name__ == "__main__":
    app.run(main)
