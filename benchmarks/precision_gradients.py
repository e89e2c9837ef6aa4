"""How far the gradients of one ChemProt step under mixed precision are from float32's, per part of the model.

    python benchmarks/precision_gradients.py --data_dir=/tmp/chemprot_formatted --model_dir=<BERT folder>

The same weights (the model's from --model_dir) and the same --batches plainly shuffled batches of train.tsv
are run under each precision of --precisions (float32 first, the reference; bfloat16-matmul: bfloat16 matrix
products in a float32 model, what --amp gives on a CPU; mixed_bfloat16: Keras's policy, every activation in
bfloat16, what --amp gave on a CPU before; mixed_float16: what --amp gives on a GPU, here with a static loss
scale of 2**15 as the dynamic one would settle on). Without dropout (training=False), so the only difference is the arithmetic.
For every policy it prints, over all batches, the median relative error ||g - g32|| / ||g32|| of the
gradients of: all weights, the classifier (output_weights/bias), the pooler, the encoder, the embeddings;
and the relative error of the logits and of the loss. float16 matmuls run on the CPU only slowly, so keep
--batches small.
"""
import argparse
import os
import statistics
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from batch_windows import add_chemprot_arguments, chemprot_train  # noqa: E402

from biobert import checkpoints, finetuning, modeling, training  # noqa: E402
from biobert.config import BertConfig  # noqa: E402

GROUPS = {"all": lambda n: True, "classifier": lambda n: n.startswith("output_"),
          "pooler": lambda n: n.startswith("bert/pooler/"), "encoder": lambda n: n.startswith("bert/encoder/"),
          "embeddings": lambda n: n.startswith("bert/embeddings/")}
LOSS_SCALE = 2.0 ** 15


def step_gradients(precision, bert_config, weights, batches, task, seed):
    """[(loss, logits, {name: gradient})] of every batch under ``precision``."""
    policy = "float32" if precision == "bfloat16-matmul" else precision
    keras.mixed_precision.set_dtype_policy(policy)
    modeling.set_matmul_dtype("bfloat16" if precision == "bfloat16-matmul" else None)
    keras.utils.set_random_seed(seed)                # the same fresh classifier weights under every policy
    model = modeling.build(modeling.BertClassifier(bert_config, task.num_labels, per_token=False))
    names = modeling.variable_map(model)
    checkpoints.load_weights(names, weights, log=lambda *_: None)
    scale = LOSS_SCALE if policy == "mixed_float16" else 1.0
    results = []
    for batch in batches:
        inputs = {k: tf.constant(batch[k]) for k in ("input_ids", "input_mask", "segment_ids")}
        with tf.GradientTape() as tape:
            logits = model(inputs, training=False)
            loss = task.loss_fn({k: tf.constant(v) for k, v in batch.items()}, logits)
            scaled = loss * scale
        grads = [tf.convert_to_tensor(g) for g in tape.gradient(scaled, list(names.values()))]
        results.append((float(loss), logits.numpy().astype(np.float64),
                        {n: g.numpy().astype(np.float64) / scale for n, g in zip(names, grads)}))
    keras.mixed_precision.set_dtype_policy("float32")
    modeling.set_matmul_dtype(None)
    return results


def relative(a, b):
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_chemprot_arguments(parser)
    parser.add_argument("--model_dir", required=True, help="BERT folder (config, vocab.txt, weights).")
    parser.add_argument("--batches", type=int, default=8, help="Batches compared.")
    parser.add_argument("--precisions", default="float32,bfloat16-matmul,mixed_bfloat16,mixed_float16",
                        help="Comma-separated: float32, bfloat16-matmul, or a Keras dtype policy; the first is "
                             "the reference.")
    args = parser.parse_args(argv)

    config_file, vocab_file = finetuning.resolve_model_files(None, None, args.model_dir)
    bert_config = BertConfig.from_json_file(config_file)
    weights = checkpoints.hf_folder(args.model_dir) or checkpoints.resolve_tf_checkpoint(args.model_dir)
    if not weights:
        parser.error(f"no weights found in {args.model_dir}")
    _, features = chemprot_train(args, vocab_file)
    task = finetuning.RelationTask()
    stream = training.training_batches(features, args.batch, args.max_seq_length, seed=args.seed, sort_window=1)
    batches = [next(stream) for _ in range(args.batches)]
    precisions = args.precisions.split(",")
    print(f"{args.batches} batches of {args.batch} ChemProt train rows, reference {precisions[0]}")
    reference = step_gradients(precisions[0], bert_config, weights, batches, task, args.seed)
    for precision in precisions[1:]:
        runs = step_gradients(precision, bert_config, weights, batches, task, args.seed)
        row = []
        for group, keep in GROUPS.items():
            errors = []
            for (_, _, g32), (_, _, g) in zip(reference, runs):
                names = [n for n in g32 if keep(n)]
                errors.append(relative(np.concatenate([g[n].ravel() for n in names]),
                                       np.concatenate([g32[n].ravel() for n in names])))
            row.append(f"{group} {statistics.median(errors):.4f}")
        logits = statistics.median(relative(lg, lg32) for (_, lg32, _), (_, lg, _) in zip(reference, runs))
        loss = statistics.median(abs(ls - ls32) / ls32 for (ls32, _, _), (ls, _, _) in zip(reference, runs))
        print(f"{precision:15s} gradient error: {', '.join(row)}; logits {logits:.4f}; loss {loss:.5f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
