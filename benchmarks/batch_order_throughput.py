"""Training throughput of four batch orders of the fine-tuning loop on a formatted ChemProt train.tsv.

    python benchmarks/batch_order_throughput.py --data_dir=/tmp/chemprot_formatted --model_dir=<BERT folder>

For each order (grouped: length-grouped batches, --group_by_length, run_ner.py's default; plain: one shuffled
batch padded to its longest row; parts: the same batches cut into training.batch_parts length-sorted parts
computed together in one step, run_re.py's default; accumulated: those parts accumulated one by one, what
run_re.py does under --use_xla) the shared Trainer runs --steps optimizer
steps on the real rows (the model's weights when --model_dir holds them, its architecture in any case) and
prints the median sentences/s over windows of --window steps, after one warm-up window (tracing), and the
padded positions per sentence. The orders run one after the other in one process, so their ratios are
measured under the same conditions.
"""
import argparse
import os
import statistics
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from batch_windows import add_chemprot_arguments, chemprot_train  # noqa: E402
from finetune_throughput import Silent  # noqa: E402

from biobert import checkpoints, distribution, finetuning, modeling, training  # noqa: E402
from biobert.config import BertConfig  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_chemprot_arguments(parser)
    parser.add_argument("--model_dir", required=True, help="BERT folder (config, vocab.txt, weights).")
    parser.add_argument("--steps", type=int, default=60, help="Optimizer steps per order (after the warm-up window).")
    parser.add_argument("--window", type=int, default=10, help="Steps per throughput window.")
    parser.add_argument("--amp", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--orders", default="grouped,plain,parts,accumulated",
                        help="Comma-separated: grouped, plain, parts, accumulated.")
    parser.add_argument("--parts", type=int, default=None,
                        help="Parts per batch for the 'parts' order (default: training.batch_parts, as run_re.py).")
    args = parser.parse_args(argv)

    runtime = distribution.setup(amp=args.amp, use_xla=False, log=lambda *_: None)
    config_file, vocab_file = finetuning.resolve_model_files(None, None, args.model_dir)
    bert_config = BertConfig.from_json_file(config_file)
    _, features = chemprot_train(args, vocab_file)
    task = finetuning.RelationTask()
    k = args.parts or training.batch_parts(args.batch)
    settings = {"grouped": (training.SORT_WINDOW, 1, 1), "plain": (1, 1, 1), "parts": (1, k, 1),
                "accumulated": (1, k, k)}
    print(f"{len(features)} rows, batch {args.batch}, precision {runtime.precision}, {args.steps} timed steps per order")
    for name in args.orders.split(","):
        sort_window, parts, accumulate = settings[name]
        log = Silent()
        cfg = training.TrainConfig(output_dir="/tmp/batch_order_throughput_unused", learning_rate=1e-5,
                                   num_train_steps=args.window + args.steps, num_accumulation_steps=accumulate,
                                   display_loss_steps=args.window, save_checkpoints_steps=0)
        trainer = training.Trainer(runtime, lambda: modeling.BertClassifier(bert_config, task.num_labels,
                                                                            per_token=False), task.loss_fn, cfg, log)
        trainer.save = lambda: None                   # nothing to keep
        weights = checkpoints.hf_folder(args.model_dir) or checkpoints.resolve_tf_checkpoint(args.model_dir)
        if weights:
            trainer.load_weights(weights)
        batches = training.training_batches(features, args.batch, args.max_seq_length, seed=args.seed,
                                            sort_window=sort_window, parts=parts)
        trainer.fit(training.flat_parts(batches) if accumulate > 1 else batches)
        probe = training.flat_parts(training.training_batches(features, args.batch, args.max_seq_length,
                                                              seed=args.seed, sort_window=sort_window, parts=parts))
        micro = (args.window + args.steps) * parts
        positions = sum(next(probe)["input_ids"].size for _ in range(micro)) / (micro // parts * args.batch)
        rate = statistics.median(log.windows[1:])
        print(f"{name:11s} sort_window={sort_window:<3d} parts={parts}: {rate:6.2f} sentences/s "
              f"(windows {', '.join(f'{w:.1f}' for w in log.windows[1:])}), {positions:.1f} padded positions/sentence")
    return 0


if __name__ == "__main__":
    sys.exit(main())
