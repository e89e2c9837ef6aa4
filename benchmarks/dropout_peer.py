"""Dropout check, the peer's half (runs in the peer's venv): the batch of benchmarks/dropout_ours.py through
BertForSequenceClassification in training mode many times, compared with our logits.

    /tmp/peer-venv/bin/python benchmarks/dropout_peer.py --data_dir=/tmp/chemprot_formatted --model_dir=$M \
        --replay=DRAWS.npz --ours=/tmp/dropout_ours.npz --passes=200

Prints: the largest difference of the logits without dropout (the same weights: float rounding only); the mean
standard deviation of the logits over the passes on each side and its ratio (dropout's rate, placement and
scaling: 1 when they agree); the mean absolute difference of the two sides' mean logits against its
Monte-Carlo standard error.
"""
import argparse
import math
import os

import numpy as np
import torch
from transformers import BertForSequenceClassification, BertTokenizerFast

from peer_hf_chemprot import read_tsv


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data_dir", required=True, help="Folder with the formatted train.tsv.")
    parser.add_argument("--model_dir", required=True, help="BERT folder (config.json, vocab.txt, weights).")
    parser.add_argument("--replay", required=True, help="The draws .npz dropout_ours.py used.")
    parser.add_argument("--ours", required=True, help="dropout_ours.py's output .npz.")
    parser.add_argument("--passes", type=int, default=200, help="Forward passes with dropout.")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads value.")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)

    sentences, _ = read_tsv(os.path.join(args.data_dir, "train.tsv"))
    draws, ours = np.load(args.replay), np.load(args.ours)
    rows = draws["rows"][0]
    if not np.array_equal(rows, ours["rows"]):
        raise SystemExit(f"error: {args.ours} holds another batch than the first of {args.replay}")
    tokenizer = BertTokenizerFast.from_pretrained(args.model_dir)
    inputs = tokenizer([sentences[i] for i in rows], truncation=True, max_length=128, padding=True,
                       return_tensors="pt")
    model = BertForSequenceClassification.from_pretrained(args.model_dir, num_labels=int(ours["eval"].shape[1]))
    with torch.no_grad():
        model.classifier.weight.copy_(torch.from_numpy(draws["output_weights"]))
        model.classifier.bias.copy_(torch.from_numpy(draws["output_bias"]))
        model.train()
        logits = np.stack([model(**inputs).logits.numpy() for _ in range(args.passes)])
        model.eval()
        plain = model(**inputs).logits.numpy()
    print(f"no dropout: max |ours - peer| {np.abs(ours['eval'] - plain).max():.2e}")
    ours_sd, peer_sd = ours["train"].std(0).mean(), logits.std(0).mean()
    print(f"logits std over passes: ours {ours_sd:.5f} ({len(ours['train'])} passes), peer {peer_sd:.5f} "
          f"({args.passes} passes), ratio {ours_sd / peer_sd:.3f}")
    gap = np.abs(ours["train"].mean(0) - logits.mean(0)).mean()
    se = math.sqrt(ours_sd ** 2 / len(ours["train"]) + peer_sd ** 2 / args.passes)
    print(f"mean logits with dropout: mean |ours - peer| {gap:.5f}, Monte-Carlo standard error about {se:.5f}")
    return 0


if __name__ == "__main__":
    main()
