"""run_re.py on replayed draws: its batches and classifier initialisation taken from an .npz.

    python benchmarks/replay_run_re.py --replay=/tmp/peer_seed2.npz <run_re.py's flags>

The .npz (``rows`` [steps, batch]: train.tsv rows per step; ``output_weights`` [labels, hidden],
``output_bias`` [labels]) comes from ``peer_hf_chemprot.py --export_replay`` (the peer's shuffle and
initialisation for its --seed) or from benchmarks/replay_order.py. Everything else is run_re.py as it is:
model, loss, optimizer, schedule, precision, dropout (from --seed), each batch computed in its length-sorted
parts. --train_batch_size must equal the replay's batch, a run wanting more steps than it holds stops with
run_re.py's "training data ran out" error.
The counterpart of ``peer_hf_chemprot.py --replay``: together they show whether a seed's outcome follows its
batches and initialisation on both implementations.
"""
import functools
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import run_re  # noqa: E402  (first: quiet TensorFlow start-up; defines run_re.py's flags)

import keras  # noqa: E402
import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

from biobert import modeling, training  # noqa: E402

flags.DEFINE_string("replay", None, "The .npz with rows, output_weights and output_bias.")
flags.DEFINE_integer("keep_checkpoints", 1, "Keep the newest N checkpoints of --save_checkpoints_steps (run_re.py "
                     "keeps 1), to compare the weights along training (benchmarks/ckpt_to_hf.py, weights_apart.py).")
FLAGS = flags.FLAGS


def replayed_batches(replay):
    """A stand-in for training.training_batches that yields the replay's batches in order."""
    rows = replay["rows"]

    def batches(features, batch_size, max_length, seed, start_step=0, pad_multiple=32, sort_window=1, parts=1):
        if batch_size != rows.shape[1]:
            raise SystemExit(f"error: {FLAGS.replay}: batches of {rows.shape[1]} rows, --train_batch_size gives "
                             f"{batch_size}")
        lengths = np.array([len(f["input_ids"]) for f in features])
        for idx in rows[start_step:]:
            yield training.assemble_batch(features, idx, lengths, max_length, pad_multiple, parts)
    return batches


def main(argv):
    replay = np.load(FLAGS.replay)
    training.training_batches = replayed_batches(replay)
    weights, bias = replay["output_weights"], replay["output_bias"]

    def build(head, input_shape):
        head.output_weights = head.add_weight(name="output_weights", shape=weights.shape,
                                              initializer=keras.initializers.Constant(weights))
        head.output_bias = head.add_weight(name="output_bias", shape=bias.shape,
                                           initializer=keras.initializers.Constant(bias))
    modeling.ClassifierHead.build = build
    training.TrainConfig = functools.partial(training.TrainConfig, keep_checkpoints=FLAGS.keep_checkpoints)
    print(f"replaying {FLAGS.replay}: {len(replay['rows'])} batches of {replay['rows'].shape[1]} rows, classifier "
          f"initialisation std {weights.std():.4f}", flush=True)
    return run_re.main(argv)


if __name__ == "__main__":
    flags.mark_flag_as_required("replay")
    app.run(main)
