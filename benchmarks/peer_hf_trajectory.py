"""Step-by-step equivalence with the Hugging Face peer, the peer's half: replays the batches written by
benchmarks/trajectory_ours.py through BertForSequenceClassification (same weights, the same classifier
initialisation, no dropout) with torch AdamW under run_re.py's schedule, and prints how far the two are apart.

Run in the peer's venv (see README_peer.md), after trajectory_ours.py on the same --output_dir.
"""
import argparse
import json
import os

import numpy as np
import torch
from transformers import BertForSequenceClassification

from peer_hf_chemprot import make_adamw


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model_dir", required=True, help="The same BERT folder given to trajectory_ours.py.")
    parser.add_argument("--output_dir", required=True, help="trajectory_ours.py's --output_dir.")
    parser.add_argument("--learning_rate", type=float, default=1e-4, help="Peak learning rate (as ours).")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads value.")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = np.load(os.path.join(args.output_dir, "batches.npz"))
    with open(os.path.join(args.output_dir, "losses.json"), encoding="utf-8") as handle:
        ours = json.load(handle)
    steps = len(ours["losses"])
    num_labels = data["output_weights"].shape[0]
    model = BertForSequenceClassification.from_pretrained(
        args.model_dir, num_labels=num_labels, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
        classifier_dropout=0.0)
    with torch.no_grad():
        model.classifier.weight.copy_(torch.from_numpy(data["output_weights"]))
        model.classifier.bias.copy_(torch.from_numpy(data["output_bias"]))
    optimizer = make_adamw(model, args.learning_rate, weight_decay=0.01, adam_epsilon=1e-6)
    warmup = int(steps * 0.1)

    def factor(k):  # run_re.py's schedule: update k (from 0) uses peak*(k+1)/warmup, then linear decay to 0
        if k < warmup:
            return (k + 1) / warmup
        return max(0.0, 1.0 - (k - warmup) / max(1, steps - warmup))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)

    def inputs(i):
        ids = torch.from_numpy(data[f"input_ids_{i}"]).long()
        return {"input_ids": ids, "attention_mask": torch.from_numpy(data[f"input_mask_{i}"]).long(),
                "token_type_ids": torch.zeros_like(ids)}

    model.train()
    losses = []
    for i in range(steps):
        loss = model(**inputs(i), labels=torch.from_numpy(data[f"label_{i}"]).long()).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
    model.eval()
    with torch.no_grad():
        logits = model(**inputs(0)).logits.numpy()
    probe = np.load(os.path.join(args.output_dir, "probe_logits.npy"))
    diffs = [abs(a - b) for a, b in zip(ours["losses"], losses)]
    print("peer losses " + " ".join(f"{x:.5f}" for x in losses))
    print("ours losses " + " ".join(f"{x:.5f}" for x in ours["losses"]))
    print(f"ours {ours['precision']} vs peer float32 over {steps} steps: max |loss difference| {max(diffs):.2e} "
          f"(at step {int(np.argmax(diffs)) + 1}), last step {diffs[-1]:.2e}; probe logits max |difference| "
          f"{float(np.abs(probe - logits).max()):.2e}, same argmax on {int((probe.argmax(1) == logits.argmax(1)).sum())}"
          f"/{len(logits)} rows")


if __name__ == "__main__":
    main()
