"""The peer's prediction from weights in an .npz (ckpt_to_hf.py or the peer's --save_every), beside run_re.py's.

Runs in the peer's venv (see benchmarks/ckpt_to_hf.py for the two commands). Loads the weights strictly into
the peer's BertForSequenceClassification, tokenizes test.tsv with its BertTokenizerFast, predicts as
peer_hf_chemprot.py does and prints the micro P/R/F1; with --compare, also the largest probability difference
from that test_results.tsv and how many rows' predicted class differ.
"""
import argparse
import os
import sys

import numpy as np
import torch
from transformers import BertForSequenceClassification, BertTokenizerFast

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peer_hf_chemprot import LABELS, micro_prf, predict, read_tsv  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model_dir", required=True, help="The Hugging Face folder (config, tokenizer).")
    parser.add_argument("--weights", required=True,
                        help="Weights .npz: ckpt_to_hf.py's, or peer_hf_chemprot.py --save_every's.")
    parser.add_argument("--data_dir", required=True, help="Folder with test.tsv (or --split's file).")
    parser.add_argument("--split", default="test", choices=("test", "dev", "train"), help="Which file to predict.")
    parser.add_argument("--compare", default=None, help="run_re.py's probabilities for --split from the same weights.")
    parser.add_argument("--max_seq_length", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    model = BertForSequenceClassification.from_pretrained(args.model_dir, num_labels=len(LABELS))
    model.load_state_dict({k: torch.from_numpy(v) for k, v in np.load(args.weights).items()}, strict=True)
    texts, gold = read_tsv(os.path.join(args.data_dir, f"{args.split}.tsv"))
    tokenizer = BertTokenizerFast.from_pretrained(args.model_dir, do_lower_case=True)
    probabilities = predict(model, tokenizer(texts, truncation=True, max_length=args.max_seq_length)["input_ids"], 64)
    precision, recall, f1, *_ = micro_prf(probabilities.argmax(axis=1).tolist(), gold)
    print(f"peer's prediction of {args.split}.tsv from {args.weights}: micro precision {100 * precision:.2f}% recall "
          f"{100 * recall:.2f}% f1 {100 * f1:.2f}%")
    if args.compare:
        ours = np.loadtxt(args.compare, delimiter="\t", ndmin=2)
        if ours.shape != probabilities.shape:
            sys.exit(f"error: {args.compare}: {ours.shape[0]} rows of {ours.shape[1]}, the peer predicted "
                     f"{probabilities.shape[0]} of {probabilities.shape[1]}")
        differ = int((ours.argmax(axis=1) != probabilities.argmax(axis=1)).sum())
        print(f"against {args.compare}: largest probability difference {np.abs(ours - probabilities).max():.2e}, "
              f"{differ} of {len(ours)} rows with another predicted class")
    return 0


if __name__ == "__main__":
    sys.exit(main())
