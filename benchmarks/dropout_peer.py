"""Dropout check, the peer's half (runs in the peer's venv): the batch of benchmarks/dropout_ours.py through
BertForSequenceClassification in training mode many times, compared with our logits.

    /tmp/peer-venv/bin/python benchmarks/dropout_peer.py --data_dir=/tmp/chemprot_formatted --model_dir=$M \
        --replay=DRAWS.npz --ours=/tmp/dropout_ours.npz --passes=200

Prints: the largest difference of the logits without dropout (the same weights: float rounding only); the mean
standard deviation of the logits over the passes on each side and its ratio (dropout's rate, placement and
scaling: 1 when they agree); the mean absolute difference of the two sides' mean logits against its
Monte-Carlo standard error. With ``--gradients`` (our .npz written with ``--gradients`` too) it also compares,
over the passes, the loss, the global gradient norm (what clipping at 1.0 sees), and the gradients of the classifier
weights and of the pooler kernel: their mean (the expected update direction) against the Monte-Carlo standard error,
and their spread (the noise dropout puts into the updates) as a ratio, 1 when the two sides agree.
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
    parser.add_argument("--gradients", action="store_true", help="Compare the gradients over the passes too.")
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
    ours_sd, peer_sd, gap, se = agreement(moments(ours["train"]), moments(logits))
    print(f"logits std over passes: ours {ours_sd:.5f} ({len(ours['train'])} passes), peer {peer_sd:.5f} "
          f"({args.passes} passes), ratio {ours_sd / peer_sd:.3f}")
    print(f"mean logits with dropout: mean |ours - peer| {gap:.5f}, Monte-Carlo standard error about {se:.5f}")
    if args.gradients:
        labels = torch.from_numpy(ours["labels"].astype(np.int64))
        compare_gradients(model, inputs, labels, ours, args.passes)
    return 0


def moments(values):
    """(mean, standard deviation, passes) over the first axis of per-pass values [passes, ...]."""
    return values.mean(0), values.std(0), len(values)


def agreement(ours, peer):
    """From two sides' ``moments``: each side's mean spread over the passes, the mean absolute difference of the
    two means, and its Monte-Carlo standard error."""
    (ours_mean, ours_sd, ours_n), (peer_mean, peer_sd, peer_n) = ours, peer
    ours_sd, peer_sd = ours_sd.mean(), peer_sd.mean()
    gap = np.abs(ours_mean - peer_mean).mean()
    return ours_sd, peer_sd, gap, math.sqrt(ours_sd ** 2 / ours_n + peer_sd ** 2 / peer_n)


def compare(name, ours, peer):
    """Prints how two sets of per-pass values ([passes, ...]) agree in mean and in spread."""
    ours_sd, peer_sd, gap, se = agreement(moments(ours), moments(peer))
    print(f"{name}: mean ours {ours.mean():.6f} peer {peer.mean():.6f}; spread over passes ours {ours_sd:.6f} "
          f"peer {peer_sd:.6f} (ratio {ours_sd / peer_sd:.3f}); mean |ours - peer| of the means {gap:.6f} "
          f"against a Monte-Carlo standard error about {se:.6f}")


def compare_gradients(model, inputs, labels, ours, passes):
    """The --gradients half: per pass with dropout, loss, global gradient norm, classifier and pooler gradients."""
    model.train()
    loss_fn = torch.nn.CrossEntropyLoss()
    losses, norms, classifier = [], [], []
    pooler_sum, pooler_sq = 0.0, 0.0
    for _ in range(passes):
        model.zero_grad()
        loss = loss_fn(model(**inputs).logits, labels)
        loss.backward()
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        losses.append(loss.item())
        norms.append(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])).item())
        classifier.append(model.classifier.weight.grad.numpy().copy())
        pooled = model.bert.pooler.dense.weight.grad.numpy().T           # [out, in] -> our kernel's [in, out]
        pooler_sum, pooler_sq = pooler_sum + pooled, pooler_sq + pooled ** 2
    compare("loss", ours["loss"], np.asarray(losses))
    compare("global gradient norm", ours["grad_norm"], np.asarray(norms))
    compare("classifier weights' gradient", ours["grad_classifier"], np.stack(classifier))
    ours_pooler = summed_moments(ours["grad_pooler_mean"], ours["grad_pooler_sq"], len(ours["loss"]))
    ours_sd, peer_sd, gap, se = agreement(ours_pooler, summed_moments(pooler_sum / passes, pooler_sq / passes, passes))
    print(f"pooler kernel's gradient: spread over passes ours {ours_sd:.7f} peer {peer_sd:.7f} "
          f"(ratio {ours_sd / peer_sd:.3f}); mean |ours - peer| of the means {gap:.7f} against a Monte-Carlo "
          f"standard error about {se:.7f}")


def summed_moments(mean, mean_square, passes):
    """``moments`` from the mean and mean square over the passes (for a gradient too large to keep per pass)."""
    return mean, np.sqrt(np.maximum(mean_square - mean ** 2, 0)), passes


if __name__ == "__main__":
    main()
