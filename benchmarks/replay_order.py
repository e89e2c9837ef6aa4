"""Export one run_re.py training's random draws that are not dropout, for the peer to replay.

    python benchmarks/replay_order.py --data_dir=/tmp/chemprot_formatted --vocab_file=$M/vocab.txt --seed=2 \
        --checkpoint=INIT/model.ckpt-1 --output=/tmp/replay_seed2.npz
    /tmp/peer-venv/bin/python benchmarks/peer_hf_chemprot.py ... --replay=/tmp/replay_seed2.npz

Writes ``rows`` [steps, batch]: the train.tsv rows (0-based, header excluded) of every training step of a
run_re.py run with this --seed (plain shuffle, batch 32, 3 epochs by default: biobert.training.training_batches as
run_re.py calls it), and ``output_weights`` / ``output_bias``: the classifier's initial values, read from
--checkpoint. Get that checkpoint from run_re.py itself with the same --seed and a learning rate of 0 for one
step (the weights stay as initialised; the initialisation does not depend on the data):

    python run_re.py --task_name=chemprot --do_train --data_dir=/tmp/chemprot_formatted --init_checkpoint=$M \
        --do_lower_case --output_dir=INIT --learning_rate=0 --num_train_epochs=0.002 --seed=2 \
        --save_checkpoints_steps=1 --nouse_xla

With both, the peer trains on our batches from our classifier initialisation; only its dropout masks (and float
rounding) are its own. That separates "this seed's batches and initialisation are a bad draw" from "our
implementation trains differently".
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from batch_windows import add_chemprot_arguments, chemprot_train  # noqa: E402
from biobert import training  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_chemprot_arguments(parser)
    parser.add_argument("--vocab_file", required=True, help="The model's vocab.txt.")
    parser.add_argument("--num_train_epochs", type=float, default=3.0, help="run_re.py's --num_train_epochs.")
    parser.add_argument("--checkpoint", required=True, help="A run_re.py checkpoint holding the initial classifier.")
    parser.add_argument("--output", required=True, help="The .npz to write.")
    args = parser.parse_args(argv)

    _, features = chemprot_train(args, args.vocab_file)
    for row, feature in enumerate(features):
        feature["row"] = np.int64(row)
    steps = max(1, int(len(features) // args.batch * args.num_train_epochs))
    batches = training.training_batches(features, args.batch, args.max_seq_length, seed=args.seed, sort_window=1)
    rows = np.stack([next(batches)["row"] for _ in range(steps)]).astype(np.int64)
    reader = tf.train.load_checkpoint(args.checkpoint)
    weights, bias = reader.get_tensor("output_weights"), reader.get_tensor("output_bias")
    tmp = args.output + ".tmp.npz"
    np.savez(tmp, rows=rows, output_weights=weights, output_bias=bias, seed=args.seed)
    os.replace(tmp, args.output)
    counts = np.bincount(rows.ravel(), minlength=len(features))
    print(f"{args.output}: {steps} steps of {args.batch} rows (each train row {counts.min()}-{counts.max()} times), "
          f"classifier {weights.shape} from {args.checkpoint} (std {weights.std():.4f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
