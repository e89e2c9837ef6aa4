"""The Hugging Face peer of benchmarks/side_by_side.py: BERT token classification on PyTorch (CPU), three jobs.

Runs in the peer's venv (benchmarks/README_peer.md), started by side_by_side.py; each job prints one JSON line
``RESULT {...}`` last.

    PEER=/tmp/peer-venv/bin/python
    $PEER benchmarks/peer_hf_ner.py throughput --model=minilm --batch=32 --seq=64 --steps=20
    $PEER benchmarks/peer_hf_ner.py predict --model_dir=HF_FOLDER --test_file=test.tsv --batch_sizes=16,32,64
    $PEER benchmarks/peer_hf_ner.py train --model_dir=MINILM --data_dir=BC5CDR/chem --batch=32 --seq=128

throughput: synthetic batches of one shape, random weights of the named size; training steps (forward, backward,
AdamW) and inference batches, sentences/s (median of 5-step windows after 3 warm-up steps).
predict: a CoNLL file (the word is the first field) -> one label per word, as ``Trainer.predict`` would do it:
the folder's fast tokenizer with ``is_split_into_words`` and truncation to --max_seq_length, batches in file
order padded to their longest row (DataCollatorWithPadding), each word labelled at its first sub-word with the
best of the word labels (B, I, O; X, [CLS], [SEP] and padding excluded, as run_ner.py). Every batch size of
--batch_sizes runs over the whole file; the best is reported, with the time of each phase.
train: one epoch of train + devel (sentences split at 30 words with biobert.ner's reader, as run_ner.py) with
``transformers.Trainer``: the loss on each word's first sub-word (-100 elsewhere), AdamW, linear warm-up over
10 % then decay, clipping at 1.0, --group_by_length (the Trainer's length-grouped sampler, in
transformers 5 ``train_sampling_strategy="group_by_length"``), fp32.
"""
import argparse
import json
import os
import statistics
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SIZES = {   # as benchmarks/finetune_throughput.py's CONFIGS
    "base": dict(vocab_size=28996, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                 intermediate_size=3072),
    "minilm": dict(vocab_size=30522, hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
                   intermediate_size=1536),
}
SPECIAL = ("[PAD]", "X", "[CLS]", "[SEP]")


def result(**fields):
    print("RESULT " + json.dumps(fields), flush=True)


def autocast(bf16):
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16)


def throughput(args):
    from transformers import BertConfig, BertForTokenClassification

    torch.manual_seed(0)
    model = BertForTokenClassification(BertConfig(num_labels=7, **SIZES[args.model]))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, model.config.vocab_size, (args.batch, args.seq), generator=gen)
    labels = torch.randint(1, 7, (args.batch, args.seq), generator=gen)
    mask = torch.ones_like(ids)
    model.train()
    stamps = []
    for _ in range(3 + args.steps):
        with autocast(args.bf16):
            loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        stamps.append(time.perf_counter())
    timed = stamps[2:]
    windows = [args.batch * 5 / (timed[i + 5] - timed[i]) for i in range(0, len(timed) - 5, 5)]
    model.eval()
    times = []
    with torch.inference_mode(), autocast(args.bf16):
        for i in range(12):
            began = time.perf_counter()
            model(input_ids=ids, attention_mask=mask)
            if i >= 2:
                times.append(time.perf_counter() - began)
    result(train=statistics.median(windows), inference=args.batch / statistics.median(times),
           torch=torch.__version__, threads=torch.get_num_threads())


def read_words(path):
    """Sentences (lists of words) of a CoNLL file: the first field of each line; blank / -DOCSTART- lines end one."""
    sentences, words = [], []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            fields = line.split()
            if not fields or fields[0] == "-DOCSTART-":
                if words:
                    sentences.append(words)
                words = []
            else:
                words.append(fields[0])
    if words:
        sentences.append(words)
    return sentences


def predict(args):
    from transformers import BertForTokenClassification, BertTokenizerFast

    began = time.perf_counter()
    tokenizer = BertTokenizerFast.from_pretrained(args.model_dir, model_max_length=args.max_seq_length)
    model = BertForTokenClassification.from_pretrained(args.model_dir).eval()
    labels = json.load(open(os.path.join(args.model_dir, "label_map.json"), encoding="utf-8"))["labels"]
    entity = np.array([i for i, name in enumerate(labels) if name not in SPECIAL])
    load = time.perf_counter() - began
    runs = []
    for batch_size in [int(b) for b in args.batch_sizes.split(",")]:
        phases = dict(read=0.0, tokenize=0.0, model=0.0, decode=0.0, write=0.0)
        t0 = time.perf_counter()
        sentences = read_words(args.test_file)
        phases["read"] = time.perf_counter() - t0
        out, truncated = [], 0
        for start in range(0, len(sentences), batch_size):
            chunk = sentences[start:start + batch_size]
            t = time.perf_counter()
            enc = tokenizer(chunk, is_split_into_words=True, truncation=True, max_length=args.max_seq_length,
                            padding="longest", return_tensors="pt")
            t1 = time.perf_counter()
            with torch.inference_mode(), autocast(args.bf16):
                logits = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"],
                               token_type_ids=enc["token_type_ids"]).logits
            logits = logits.float().numpy()
            t2 = time.perf_counter()
            for row, words in enumerate(chunk):
                word_ids = enc.word_ids(row)
                best = ["O"] * len(words)
                seen = set()
                for pos, w in enumerate(word_ids):
                    if w is not None and w not in seen:
                        seen.add(w)
                        best[w] = labels[entity[logits[row, pos, entity].argmax()]]
                truncated += len(words) - len(seen)
                out.append(best)
            t3 = time.perf_counter()
            phases["tokenize"] += t1 - t
            phases["model"] += t2 - t1
            phases["decode"] += t3 - t2
        t = time.perf_counter()
        with open(args.output, "w", encoding="utf-8") as handle:
            for words, best in zip(sentences, out):
                handle.write("".join(f"{w} {p}\n" for w, p in zip(words, best)) + "\n")
        phases["write"] = time.perf_counter() - t
        elapsed = time.perf_counter() - t0
        words = sum(len(s) for s in sentences)
        runs.append(dict(batch=batch_size, seconds=elapsed, words_per_s=words / elapsed, phases=phases))
        print(f"batch {batch_size}: {elapsed:.1f}s, {words / elapsed:.0f} words/s, "
              + ", ".join(f"{k} {v:.1f}s" for k, v in phases.items()), flush=True)
    best = min(runs, key=lambda r: r["seconds"])
    result(words=words, sentences=len(sentences), truncated_words=truncated, load_seconds=load, best=best,
           runs=runs, torch=torch.__version__, threads=torch.get_num_threads())


def train(args):
    import transformers
    from transformers import (BertForTokenClassification, BertTokenizerFast, DataCollatorForTokenClassification,
                              Trainer, TrainingArguments)

    from biobert import ner

    began = time.perf_counter()
    sentences = []
    for name in ("train.tsv", "devel.tsv"):
        path = os.path.join(args.data_dir, name)
        if os.path.isfile(path):
            sentences += ner.read_ner_file(path, args.max_words)
    if args.limit:
        sentences = sentences[:args.limit]
    names = sorted({label for s in sentences for label in s.labels})
    label_ids = {name: i for i, name in enumerate(names)}
    tokenizer = BertTokenizerFast.from_pretrained(args.model_dir, model_max_length=args.seq)
    enc = tokenizer([s.words for s in sentences], is_split_into_words=True, truncation=True, max_length=args.seq)
    rows = []
    for i, s in enumerate(sentences):
        targets, seen = [], set()
        for w in enc.word_ids(i):
            targets.append(-100 if w is None or w in seen else label_ids[s.labels[w]])
            if w is not None:
                seen.add(w)
        rows.append({"input_ids": enc["input_ids"][i], "attention_mask": enc["attention_mask"][i],
                     "token_type_ids": enc["token_type_ids"][i], "labels": targets})
    features = time.perf_counter() - began
    model = BertForTokenClassification.from_pretrained(args.model_dir, num_labels=len(names))
    training_args = TrainingArguments(
        output_dir=args.output_dir, per_device_train_batch_size=args.batch, learning_rate=args.learning_rate,
        num_train_epochs=1, max_steps=args.max_steps or -1, warmup_steps=args.warmup_proportion,
        weight_decay=0.01, adam_epsilon=1e-6, max_grad_norm=1.0,
        train_sampling_strategy="group_by_length" if args.group_by_length else "random",
        use_cpu=True, bf16=args.bf16, report_to=[], save_strategy="no", logging_steps=50, seed=args.seed,
        dataloader_drop_last=True, disable_tqdm=True)
    trainer = Trainer(model=model, args=training_args, train_dataset=rows,
                      data_collator=DataCollatorForTokenClassification(tokenizer))
    t = time.perf_counter()
    output = trainer.train()
    seconds = time.perf_counter() - t
    steps = output.global_step
    result(sentences=len(rows), steps=steps, train_seconds=seconds, sentences_per_s=steps * args.batch / seconds,
           feature_seconds=features, loss=output.training_loss, transformers=transformers.__version__,
           torch=torch.__version__, threads=torch.get_num_threads())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--bf16", action="store_true", help="torch.autocast(bfloat16) (a CPU with bf16 arithmetic)")
    jobs = parser.add_subparsers(dest="job", required=True)
    p = jobs.add_parser("throughput")
    p.add_argument("--model", choices=sorted(SIZES), default="minilm")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--seq", type=int, default=64)
    p.add_argument("--steps", type=int, default=20)
    p = jobs.add_parser("predict")
    p.add_argument("--model_dir", required=True, help="biobert/convert.py's folder of the fine-tuned model")
    p.add_argument("--test_file", required=True)
    p.add_argument("--output", default="/tmp/peer_ner_predictions.txt")
    p.add_argument("--batch_sizes", default="16,32,64,128")
    p.add_argument("--max_seq_length", type=int, default=128)
    p = jobs.add_parser("train")
    p.add_argument("--model_dir", required=True)
    p.add_argument("--data_dir", required=True)
    p.add_argument("--output_dir", default="/tmp/peer_ner_train")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--learning_rate", type=float, default=2e-4)
    p.add_argument("--warmup_proportion", type=float, default=0.1)
    p.add_argument("--max_words", type=int, default=30)
    p.add_argument("--limit", type=int, default=0, help="the first N sentences only (0: all)")
    p.add_argument("--max_steps", type=int, default=0)
    p.add_argument("--seed", type=int, default=12345)
    p.add_argument("--group_by_length", action=argparse.BooleanOptionalAction, default=True)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    {"throughput": throughput, "predict": predict, "train": train}[args.job](args)


if __name__ == "__main__":
    main()
