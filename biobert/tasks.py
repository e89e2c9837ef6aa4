"""The task adapters of the fine-tuning job (biobert.finetuning): what differs between NER and relation
extraction. Each reads its files, names its labels, makes its features, gives the head's shape (per token or
pooled) and loss, evaluates, writes its prediction files and predicts on raw text. Adapters take the values they
need as arguments: they read no flags and hold no model (raw-text prediction gets a ``predict`` function).
"""
import collections
import math
import os
import time

import numpy as np
import tensorflow as tf

from biobert import checkpoints, conlleval, ner, rawtext, re_eval, relation
from biobert.errors import InputError


def softmax(logits):
    """Probabilities along the last axis of ``logits``."""
    z = logits - logits.max(-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)


def weighted_cross_entropy(labels, logits, weights):
    """The ``weights``-weighted mean of the cross-entropy of ``logits`` against ``labels`` (a weight sum below 1,
    an all-padding batch, divides by 1): both adapters' training loss."""
    weights = tf.cast(weights, tf.float32)
    ce = tf.keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)
    return tf.reduce_sum(ce * weights) / tf.maximum(tf.reduce_sum(weights), 1.0)


def _file(data_dir, *names):
    """The path of the first of ``names`` present in ``data_dir``; InputError naming the folder if none is."""
    for name in names:
        path = os.path.join(data_dir, name)
        if os.path.isfile(path):
            return path
    raise InputError(f"none of {', '.join(names)} found in the data directory", path=data_dir)


ENTITY_TYPES = {"chem": "Chemical", "chemical": "Chemical", "disease": "Disease"}   # BC5CDR folders' B/I/O tags


class NerTask:
    """BC5CDR-style token classification; labels from the data (X, [CLS], [SEP] added), id 0 = padding."""
    per_token = True
    label_file = "label_map.json"

    def __init__(self, label_scheme="first_subword", max_words=30, labels=None):
        """``labels``: the --labels value (a comma-separated list or a labels file), or None: the label set is
        then the training data's tags, checked against the B/I/O scheme (ner.check_tag_scheme)."""
        if label_scheme not in ("original", "first_subword"):
            raise InputError(f"unknown --ner_label_scheme {label_scheme!r} (use 'original' or 'first_subword')")
        self.label_scheme = label_scheme
        self.max_words = max_words
        self.declared = ner.parse_label_set(labels) if labels else None
        self.label_map = None

    def read(self, data_dir, split):
        if split == "train":
            sentences = []
            for name in ("train.tsv", "devel.tsv"):   # the recipe trains on train + devel
                path = os.path.join(data_dir, name)
                if name == "train.tsv" or os.path.isfile(path):
                    sentences += ner.read_ner_file(_file(data_dir, name), self.max_words)
            return sentences
        name = {"eval": ("devel.tsv", "dev.tsv"), "test": ("test.tsv",)}[split]
        return ner.read_ner_file(_file(data_dir, *name), self.max_words)

    def prepare_labels(self, output_dir, train_examples, init_checkpoint):
        saved = os.path.join(output_dir, self.label_file)
        candidates = [saved]
        if init_checkpoint:
            candidates.append(os.path.join(checkpoints.checkpoint_folder(init_checkpoint), self.label_file))
        existing = next((p for p in candidates if os.path.isfile(p)), None)
        if existing:
            self.label_map = ner.LabelMap.from_json(existing)
            if self.declared is not None and self.declared != self.label_map.entity_labels:
                raise InputError(f"--labels gives {', '.join(self.declared)} but the model here was trained with "
                                 f"{', '.join(self.label_map.entity_labels)} (use another output_dir to train "
                                 "a new label set)", path=existing)
            if train_examples:
                ner.check_labels(train_examples, self.label_map)
        elif train_examples:
            if self.declared is not None:
                self.label_map = ner.LabelMap(self.declared, source="declared by --labels")
                ner.check_labels(train_examples, self.label_map)
            else:
                ner.check_tag_scheme(train_examples)
                self.label_map = ner.LabelMap.from_sentences([train_examples])
        else:
            raise InputError(f"no {self.label_file} in output_dir or beside --init_checkpoint: predicting needs "
                             "the label map saved by the training run", path=output_dir)
        return self.label_map

    def save_labels(self, output_dir):
        self.label_map.to_json(os.path.join(output_dir, self.label_file))

    def check_labels(self, examples):
        """InputError (file:line, the file's tags) at the first label of ``examples`` not in the label set."""
        ner.check_labels(examples, self.label_map)

    def label_counts(self, examples):
        """(where the label set came from, {label: words of ``examples`` with it}), every label of the set."""
        counts = ner.tag_counts(examples)
        return self.label_map.source, {label: counts[label] for label in self.label_map.entity_labels}

    @property
    def num_labels(self):
        return self.label_map.num_labels

    def features(self, examples, tokenizer, max_seq_length):
        ner.check_labels(examples, self.label_map)
        feats = ner.convert_sentences(examples, tokenizer, self.label_map, max_seq_length)
        for f in feats:
            weights = f["first_subword"] if self.label_scheme == "first_subword" else np.ones_like(f["input_ids"])
            f["loss_weights"] = weights.astype(np.float32)
        return feats

    def loss_fn(self, batch, logits):
        """Cross-entropy over the tokens the label scheme trains on (loss_weights), padding excluded."""
        return weighted_cross_entropy(batch["label_ids"], logits, batch["loss_weights"])

    def outputs(self, features, logits_by_example):
        return [softmax(lg[: len(f["input_ids"])]) for f, lg in zip(features, logits_by_example)]

    def evaluate(self, examples, features, probs):
        lines = []
        for sentence, feature, p in zip(examples, features, probs):
            pred, _, _ = ner.decode_sentence(sentence, feature, p, self.label_map)
            lines += [f"{w} {g} {q}" for w, g, q in zip(sentence.words, sentence.labels, pred)] + [""]
        loss = _mean_loss(features, probs, "label_ids", "loss_weights")
        m = conlleval.metrics(conlleval.evaluate(lines))
        return {"eval_precision": m["precision"], "eval_recall": m["recall"], "eval_f1": m["f1"],
                "eval_accuracy": m["accuracy"], "eval_loss": loss}

    def read_predict_file(self, path):
        return rawtext.read_documents(path)

    def model_info(self, data_dir):
        """What raw-text prediction needs besides weights, labels and vocabulary (saved in model_info.json)."""
        name = os.path.basename(os.path.normpath(data_dir)).lower() if data_dir else ""
        return {"entity_type": ENTITY_TYPES.get(name, name or "entity")}

    def predict_text(self, documents, tokenizer, predict, max_seq_length, log, info):
        """Entity records with character offsets for raw documents (see biobert.rawtext). ``predict``: model
        features -> the adapter's outputs (probabilities), in order; ``info``: the model's model_info.json."""
        from biobert.segmentation import NLTKSegmenter

        began = time.time()
        segmenter = NLTKSegmenter()
        log.info(f"sentence segmentation: {segmenter.source}")
        tagger = rawtext.NerTagger(tokenizer, self.label_map, max_seq_length, segmenter,
                                   default_type=info.get("entity_type", "entity"))
        features, plan = tagger.features(documents)
        probs = predict(features)
        records = tagger.decode(documents, plan, probs)
        elapsed = max(time.time() - began, 1e-9)
        sentences = sum(len(p) for p in plan)
        log.log((), {"tag_documents_per_s": len(documents) / elapsed, "tag_sentences_per_s": sentences / elapsed},
                text=f"predict: {len(documents)} documents, {sentences} sentences, {len(features)} windows, "
                     f"{sum(len(r['entities']) for r in records)} entities in {elapsed:.1f}s (segmenting, "
                     f"tokenizing, model, decoding: {len(documents) / elapsed:.1f} documents/s, "
                     f"{sentences / elapsed:.1f} sentences/s)")
        return records

    def write_predictions(self, output_dir, examples, features, probs, log):
        counts, report = ner.write_prediction_files(output_dir, examples, features, probs, self.label_map)
        for line in report.splitlines():
            log.info(line)
        m = conlleval.metrics(counts)
        return {"test_precision": m["precision"], "test_recall": m["recall"], "test_f1": m["f1"]}


class RelationTask:
    """ChemProt-style sentence classification on the pooled [CLS] into relation.LABELS."""
    per_token = False
    num_labels = len(relation.LABELS)

    def read(self, data_dir, split):
        name = {"train": ("train.tsv",), "eval": ("dev.tsv", "devel.tsv"), "test": ("test.tsv",)}[split]
        return relation.read_re_tsv(_file(data_dir, *name))

    def prepare_labels(self, output_dir, train_examples, init_checkpoint):
        return relation.LABELS

    def save_labels(self, output_dir):
        pass

    def check_labels(self, examples):
        """Nothing to do: read_re_tsv accepts only relation.LABELS."""

    def label_counts(self, examples):
        """(where the label set came from, {label: examples with it}), every label of relation.LABELS."""
        counts = collections.Counter(e.label for e in examples)
        return "ChemProt's classes", {label: counts[label] for label in relation.LABELS}

    def features(self, examples, tokenizer, max_seq_length):
        return relation.convert_examples(examples, tokenizer, max_seq_length)

    def loss_fn(self, batch, logits):
        """Cross-entropy over the batch's real rows (valid), the rows that pad the last batch excluded."""
        return weighted_cross_entropy(batch["label"], logits, batch["valid"])

    def outputs(self, features, logits_by_example):
        return [softmax(lg) for lg in logits_by_example]

    def evaluate(self, examples, features, probs):
        result = re_eval.evaluate(predicted_relations(probs), [e.label for e in examples])
        loss = float(np.mean([-math.log(max(p[f["label"]], 1e-12)) for f, p in zip(features, probs)]))
        return {"eval_accuracy": result["accuracy"], "eval_loss": loss, "eval_precision": result["precision"],
                "eval_recall": result["recall"], "eval_f1": result["f1"]}

    def read_predict_file(self, path):
        documents = rawtext.read_documents(path)
        for doc in documents:
            doc.extra["masked"] = relation.masked_pair(doc.text, doc.extra, path, doc.line)
        return documents

    def model_info(self, data_dir):
        return {}

    def predict_text(self, documents, tokenizer, predict, max_seq_length, log, info):
        """Class probabilities and the predicted label for each given chemical-gene pair (``predict``: model
        features -> probabilities, in order)."""
        rows = [d for d in documents if d.extra["masked"] is not None]
        examples = [relation.Example(str(d.id), d.extra["masked"], relation.NEGATIVE_LABEL, d.line) for d in rows]
        probs = predict(relation.convert_examples(examples, tokenizer, max_seq_length))
        by_line = {d.line: (p, label) for d, p, label in zip(rows, probs, predicted_relations(probs))}
        records = []
        for doc in documents:
            record = {"id": doc.id, "text": doc.text}
            record.update({k: doc.extra[k] for k in ("chemical", "gene") if k in doc.extra})
            p, record["label"] = by_line.get(doc.line, (None, None))
            record["probabilities"] = {} if p is None else {k: round(float(v), 6) for k, v in zip(relation.LABELS, p)}
            records.append(record)
        return records

    def write_predictions(self, output_dir, examples, features, probs, log):
        relation.write_test_results(os.path.join(output_dir, "test_results.tsv"), np.stack(probs))
        result = re_eval.evaluate(predicted_relations(probs), [e.label for e in examples])
        log.info(f"test micro-F1 over CPR classes (false excluded): {100 * result['f1']:.2f}% "
                 f"(P {100 * result['precision']:.2f}%, R {100 * result['recall']:.2f}%)")
        return {"test_precision": result["precision"], "test_recall": result["recall"], "test_f1": result["f1"]}


def _mean_loss(features, probs, label_key, weight_key):
    total, weight = 0.0, 0.0
    for f, p in zip(features, probs):
        w = f[weight_key]
        picked = p[np.arange(len(f[label_key])), f[label_key]]
        total += float(-(np.log(np.maximum(picked, 1e-12)) * w).sum())
        weight += float(w.sum())
    return total / max(weight, 1.0)


def predicted_relations(probs):
    """The predicted class (relation.LABELS) of each row of class probabilities: its arg-max."""
    return [relation.LABELS[int(np.argmax(p))] for p in probs]
