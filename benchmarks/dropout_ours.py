"""Dropout check against the Hugging Face peer, our half: one ChemProt batch through run_re.py's model in training
mode (dropout on) many times, to compare the distribution of the logits with the peer's (benchmarks/dropout_peer.py).

    python benchmarks/dropout_ours.py --data_dir=/tmp/chemprot_formatted --model_dir=$M --replay=DRAWS.npz \
        --output=/tmp/dropout_ours.npz --passes=200
    /tmp/peer-venv/bin/python benchmarks/dropout_peer.py --data_dir=/tmp/chemprot_formatted --model_dir=$M \
        --replay=DRAWS.npz --ours=/tmp/dropout_ours.npz --passes=200

DRAWS.npz (``peer_hf_chemprot.py --export_replay`` or benchmarks/replay_order.py) gives the batch (its first step's
train.tsv rows) and the classifier initialisation, so both sides start from the same weights. Writes the logits of
every pass (``train`` [passes, rows, labels]) and of one pass without dropout (``eval``). The step-by-step check
(trajectory_ours.py) runs without dropout; this one covers where dropout applies, its rate and its scaling.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from biobert import cli  # noqa: E402,F401  (quiet TensorFlow start-up)

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from biobert import checkpoints, distribution, modeling, relation, training  # noqa: E402
from biobert.config import BertConfig  # noqa: E402
from biobert.tokenization import FullTokenizer  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data_dir", required=True, help="Folder with the formatted train.tsv.")
    parser.add_argument("--model_dir", required=True, help="BERT folder (config.json, vocab.txt, weights).")
    parser.add_argument("--replay", required=True, help="The draws .npz (rows, output_weights, output_bias).")
    parser.add_argument("--output", required=True, help="The .npz to write.")
    parser.add_argument("--passes", type=int, default=200, help="Forward passes with dropout.")
    parser.add_argument("--amp", action=argparse.BooleanOptionalAction, default=False,
                        help="run_re.py's --amp precision (default: float32, as the peer).")
    args = parser.parse_args(argv)

    distribution.setup(amp=args.amp)
    config = BertConfig.from_json_file(os.path.join(args.model_dir, "config.json"))
    tokenizer = FullTokenizer(os.path.join(args.model_dir, "vocab.txt"), do_lower_case=True)
    examples = relation.read_re_tsv(os.path.join(args.data_dir, "train.tsv"))
    draws = np.load(args.replay)
    rows = draws["rows"][0]
    features = relation.convert_examples([examples[i] for i in rows], tokenizer, 128)
    batch = training.pad_batch(features, max(len(f["input_ids"]) for f in features))
    inputs = {k: batch[k] for k in ("input_ids", "input_mask", "segment_ids")}
    model = modeling.BertClassifier(config, len(relation.LABELS), per_token=False)
    model(inputs, training=False)
    checkpoints.load_weights(modeling.variable_map(model), args.model_dir, log=lambda text: None)
    model.classifier.output_weights.assign(draws["output_weights"])
    model.classifier.output_bias.assign(draws["output_bias"])
    forward = tf.function(lambda x: model(x, training=True))
    logits = np.stack([np.asarray(forward(inputs)) for _ in range(args.passes)])
    plain = np.asarray(model(inputs, training=False))
    np.savez(args.output, train=logits, eval=plain, rows=rows)
    print(f"{args.output}: {args.passes} passes of {len(rows)} rows; logits std over passes {logits.std(0).mean():.5f}, "
          f"|mean - no-dropout| {np.abs(logits.mean(0) - plain).mean():.5f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
