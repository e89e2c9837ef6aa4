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

With ``--gradients`` each pass is also a backward pass of the mean cross-entropy on the batch's labels, and the
.npz holds, per pass, the loss (``loss``), the global norm of the whole gradient (``grad_norm``: what clipping at
1.0 sees) and the gradient of the classifier's weights (``grad_classifier`` [passes, labels, hidden]), plus the
mean and mean square over the passes of the pooler kernel's gradient (``grad_pooler_mean``/``_sq``, [in, out]):
the noise dropout puts into the updates, not only into the logits.
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


def gradient_passes(model, inputs, labels, passes):
    """Per pass with dropout: loss, global gradient norm, classifier gradient; pooler gradient's moments."""
    pooler = modeling.variable_map(model)["bert/pooler/dense/kernel"]
    variables = model.trainable_variables
    at_pooler = [i for i, v in enumerate(variables) if v is pooler][0]
    at_classifier = [i for i, v in enumerate(variables) if v is model.classifier.output_weights][0]

    @tf.function
    def step(x, y):
        with tf.GradientTape() as tape:
            logits = model(x, training=True)
            loss = tf.reduce_mean(tf.keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True))
        grads = [tf.convert_to_tensor(g) for g in tape.gradient(loss, variables)]
        return loss, tf.linalg.global_norm(grads), grads[at_classifier], grads[at_pooler]

    out = {"loss": [], "grad_norm": [], "grad_classifier": []}
    total, total_sq = 0.0, 0.0
    labels = tf.constant(labels)
    for _ in range(passes):
        loss, norm, classifier, pooled = step(inputs, labels)
        out["loss"].append(float(loss))
        out["grad_norm"].append(float(norm))
        out["grad_classifier"].append(np.asarray(classifier))
        total, total_sq = total + np.asarray(pooled), total_sq + np.asarray(pooled) ** 2
    out = {k: np.asarray(v) for k, v in out.items()}
    out.update(grad_pooler_mean=total / passes, grad_pooler_sq=total_sq / passes)
    print(f"gradients: loss {out['loss'].mean():.4f} (sd {out['loss'].std():.4f}), global norm "
          f"{out['grad_norm'].mean():.4f} (sd {out['grad_norm'].std():.4f}) over {passes} passes")
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data_dir", required=True, help="Folder with the formatted train.tsv.")
    parser.add_argument("--model_dir", required=True, help="BERT folder (config.json, vocab.txt, weights).")
    parser.add_argument("--replay", required=True, help="The draws .npz (rows, output_weights, output_bias).")
    parser.add_argument("--output", required=True, help="The .npz to write.")
    parser.add_argument("--passes", type=int, default=200, help="Forward passes with dropout.")
    parser.add_argument("--gradients", action="store_true", help="Also record each pass's gradients (see above).")
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
    extra = gradient_passes(model, inputs, batch["label"], args.passes) if args.gradients else {}
    np.savez(args.output, train=logits, eval=plain, rows=rows, labels=batch["label"], **extra)
    print(f"{args.output}: {args.passes} passes of {len(rows)} rows; logits std over passes {logits.std(0).mean():.5f}, "
          f"|mean - no-dropout| {np.abs(logits.mean(0) - plain).mean():.5f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
