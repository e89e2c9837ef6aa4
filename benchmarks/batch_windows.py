"""What length grouping does to the training batches of a formatted ChemProt train.tsv, per sort window.

    python benchmarks/batch_windows.py --data_dir=/tmp/chemprot_formatted --vocab_file=<vocab.txt>

One epoch of biobert.training.training_batches (batch 32, max length 128, the run's seed) for each
--sort_windows value (1 = the plain shuffle of --nogroup_by_length; training.SORT_WINDOW = the default):
the padded positions the epoch computes (relative to the plain shuffle) and how many pairs of rows of one
sentence share a batch. A sentence is approximated by (PMID, words after masking), so the pair counts are
lower bounds, the same way for every window.
"""
import argparse
import collections
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from biobert import relation, tokenization, training  # noqa: E402


def add_chemprot_arguments(parser):
    """The arguments of the ChemProt batch benchmarks: data, casing, batch, truncation, seed."""
    parser.add_argument("--data_dir", required=True, help="Folder with the formatted train.tsv.")
    parser.add_argument("--do_lower_case", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--batch", type=int, default=32, help="Rows per batch (one replica).")
    parser.add_argument("--max_seq_length", type=int, default=128, help="Truncation length.")
    parser.add_argument("--seed", type=int, default=12345, help="The run's --seed.")


def chemprot_train(args, vocab_file):
    """train.tsv's examples and run_re.py's features of them."""
    examples = relation.read_re_tsv(os.path.join(args.data_dir, "train.tsv"))
    tokenizer = tokenization.FullTokenizer(vocab_file, args.do_lower_case)
    return examples, relation.convert_examples(examples, tokenizer, args.max_seq_length)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_chemprot_arguments(parser)
    parser.add_argument("--vocab_file", required=True, help="The model's vocab.txt.")
    parser.add_argument("--sort_windows", default=f"1,2,4,8,16,{training.SORT_WINDOW}",
                        help="Comma-separated sort windows (batches sorted by length together).")
    args = parser.parse_args(argv)

    examples, features = chemprot_train(args, args.vocab_file)
    sentence = [(e.guid.split(".")[0], len(e.text.split())) for e in examples]
    for row, feature in enumerate(features):
        feature["row"] = row
    steps = len(features) // args.batch
    print(f"{len(features)} rows, {len(set(sentence))} sentences (PMID, words), {steps} batches of {args.batch}")
    plain = None
    for window in (int(w) for w in args.sort_windows.split(",")):
        batches = training.training_batches(features, args.batch, args.max_seq_length, seed=args.seed,
                                            sort_window=window)
        positions = together = 0
        for _ in range(steps):
            batch = next(batches)
            positions += batch["input_ids"].size
            counts = collections.Counter(sentence[r] for r in batch["row"].tolist())
            together += sum(n * (n - 1) // 2 for n in counts.values())
        plain = plain or (positions if window == 1 else None)
        share = f" ({positions / plain:.2f} x plain)" if plain else ""
        print(f"sort window {window:3d}: padded positions {positions:9d}{share}   "
              f"same-sentence pairs in a batch {together:5d}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
