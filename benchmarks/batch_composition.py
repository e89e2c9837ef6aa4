"""What the training batches of a formatted ChemProt train.tsv hold, for three ways of grouping them.

    python benchmarks/batch_composition.py --data_dir=/tmp/chemprot_formatted --vocab_file=<vocab.txt>

One epoch of biobert.training.training_batches (batch 32, max length 128, the run's seed) per scheme:
  exact    rows sorted by length within windows of 64 batches (the NER default)
  bucket   rows grouped by padded length within the same windows (what run_re.py uses)
  shuffled no grouping (windows of one batch): the plain shuffle of the original and of the HF peer
Prints, per scheme, the padded positions the epoch computes and how many pairs of rows of one sentence share
a batch. A "sentence" is approximated by (PMID, number of words after masking): rows of one sentence whose
masked mentions differ in word count count as different sentences, so the pair counts are lower bounds,
the same for every scheme.
"""
import argparse
import collections
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from biobert import relation, tokenization, training  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data_dir", required=True, help="Folder with the formatted train.tsv.")
    parser.add_argument("--vocab_file", required=True, help="The model's vocab.txt.")
    parser.add_argument("--do_lower_case", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--max_seq_length", type=int, default=128)
    parser.add_argument("--seed", type=int, default=12345)
    args = parser.parse_args(argv)

    examples = relation.read_re_tsv(os.path.join(args.data_dir, "train.tsv"))
    tokenizer = tokenization.FullTokenizer(args.vocab_file, args.do_lower_case)
    features = relation.convert_examples(examples, tokenizer, args.max_seq_length)
    sentence = [(e.guid.split(".")[0], len(e.text.split())) for e in examples]
    for row, feature in enumerate(features):
        feature["row"] = row
    steps = len(features) // args.batch
    print(f"{len(features)} rows, {len(set(sentence))} sentences (PMID, words), {steps} batches of {args.batch}")
    schemes = {"exact": dict(sort_window=64, bucket=False), "bucket": dict(sort_window=64, bucket=True),
               "shuffled": dict(sort_window=1, bucket=False)}
    for name, options in schemes.items():
        batches = training.training_batches(features, args.batch, args.max_seq_length, seed=args.seed, **options)
        positions = together = 0
        for _ in range(steps):
            batch = next(batches)
            positions += batch["input_ids"].size
            counts = collections.Counter(sentence[r] for r in batch["row"].tolist())
            together += sum(n * (n - 1) // 2 for n in counts.values())
        print(f"{name:9s} padded positions {positions:9d}   same-sentence pairs in a batch {together:6d}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
