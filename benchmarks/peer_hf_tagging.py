"""The Hugging Face peer for raw-text NER: ``pipeline("token-classification", aggregation_strategy="first")`` on
the weights of a run_ner.py fine-tuning, over the same documents and sentences, timed per batch size.

Runs in the peer's venv (benchmarks/README_peer.md). Steps (see benchmarks/tag_compare.py for the whole chain):

    python biobert/convert.py --checkpoint=FOLDER --output_dir=/tmp/ner_hf
    python benchmarks/tag_compare.py split --predictions=OURS/predictions.jsonl --output=/tmp/sentences.jsonl
    /tmp/peer-venv/bin/python benchmarks/peer_hf_tagging.py --model_dir=$M --weights=/tmp/ner_hf \
        --label_map=FOLDER/label_map.json --sentences=/tmp/sentences.jsonl --output=/tmp/peer.jsonl

The documents are given already split into our sentences (so the two sides tag the same sequences; the peer's
time leaves the sentence splitting out). The labels X, [CLS], [SEP] and padding get a bias of -1e4, so that a
word is labelled with the best of B, I, O as run_ner.py does; B/I become B-<type>/I-<type> for the pipeline's
grouping. Sentences of more than 128 pieces are cut into windows with the pipeline's own ``stride``.
"""
import argparse
import os
import json
import time

import numpy as np
import torch
from transformers import BertConfig, BertForTokenClassification, BertTokenizerFast, pipeline


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model_dir", required=True, help="The Hugging Face folder run_ner.py started from.")
    parser.add_argument("--weights", required=True, help="The fine-tuned checkpoint as biobert/convert.py's "
                        "Hugging Face folder (or an .npz of the same tensors).")
    parser.add_argument("--label_map", required=True, help="The fine-tuned folder's label_map.json.")
    parser.add_argument("--sentences", required=True, help="tag_compare.py split's output.")
    parser.add_argument("--output", required=True, help="Entities as run_ner.py's predictions.jsonl.")
    parser.add_argument("--entity_type", default="Chemical")
    parser.add_argument("--batch_sizes", default="1,8,32,64")
    parser.add_argument("--max_seq_length", type=int, default=128)
    parser.add_argument("--stride", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--bf16", action="store_true", help="torch.autocast(bfloat16) around the model.")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    labels = json.load(open(args.label_map, encoding="utf-8"))["labels"]
    names = [f"B-{args.entity_type}" if x == "B" else f"I-{args.entity_type}" if x == "I" else x for x in labels]
    config = BertConfig.from_pretrained(args.model_dir, num_labels=len(labels),
                                        id2label=dict(enumerate(names)), label2id={n: i for i, n in enumerate(names)})
    model = BertForTokenClassification(config)
    if os.path.isdir(args.weights):
        from safetensors.numpy import load_file

        arrays = load_file(os.path.join(args.weights, "model.safetensors"))
    else:
        arrays = dict(np.load(args.weights))
    state = {k: torch.from_numpy(v) for k, v in arrays.items()
             if not k.startswith("bert.pooler.")}          # a token classifier has no pooler
    entity = [i for i, x in enumerate(labels) if x not in ("[PAD]", "X", "[CLS]", "[SEP]")]
    bias = state["classifier.bias"].clone()
    bias[[i for i in range(len(labels)) if i not in entity]] = -1e4
    state["classifier.bias"] = bias
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [m for m in missing if not m.endswith("position_ids")]
    if missing or unexpected:
        raise SystemExit(f"error: weights do not fit: missing {missing}, unexpected {unexpected}")
    model.eval()
    # the folder's own tokenizer.json (BertTokenizerFast(vocab_file=...) alone maps every word to [UNK] in
    # transformers 5)
    tokenizer = BertTokenizerFast.from_pretrained(args.model_dir, model_max_length=args.max_seq_length)
    tagger = pipeline("token-classification", model=model, tokenizer=tokenizer, aggregation_strategy="first",
                      device=-1, stride=args.stride)

    documents = [json.loads(line) for line in open(args.sentences, encoding="utf-8")]
    sentences, where = [], []
    for d, doc in enumerate(documents):
        for start, end in doc["sentences"]:
            sentences.append(doc["text"][start:end])
            where.append((d, start))
    print(f"{len(documents)} documents, {len(sentences)} sentences; torch {torch.__version__}, "
          f"{args.threads} threads, {'bf16 autocast' if args.bf16 else 'fp32'}")
    best = None
    for batch_size in [int(b) for b in args.batch_sizes.split(",")]:
        began = time.time()
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
            found = tagger(sentences, batch_size=batch_size)
        elapsed = time.time() - began
        print(f"batch {batch_size}: {elapsed:.1f}s, {len(documents) / elapsed:.2f} documents/s, "
              f"{len(sentences) / elapsed:.1f} sentences/s", flush=True)
        if best is None or elapsed < best[0]:
            best = (elapsed, batch_size, found)
    elapsed, batch_size, found = best
    print(f"best: batch {batch_size}, {len(documents) / elapsed:.2f} documents/s, "
          f"{len(sentences) / elapsed:.1f} sentences/s")
    records = [{"id": doc["id"], "text": doc["text"], "entities": []} for doc in documents]
    for (d, offset), entities in zip(where, found):
        for e in entities:
            records[d]["entities"].append({"start": int(e["start"]) + offset, "end": int(e["end"]) + offset,
                                           "type": e["entity_group"], "score": float(e["score"])})
    with open(args.output, "w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
