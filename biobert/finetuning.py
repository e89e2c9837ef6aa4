"""The fine-tuning job shared by run_ner.py and run_re.py: data -> features -> Trainer -> eval -> predictions.

A task adapter supplies what differs: reading its files, the head (per token or pooled), the loss, the
evaluation figures and the prediction files. Everything else (strategy, precision, XLA, schedule, checkpoints,
resume, logging) is the shared core's.
"""
import collections
import math
import os
import time

import numpy as np
import tensorflow as tf

from biobert import checkpoints, conlleval, defaults, modeling, ner, rawtext, re_eval, relation, training
from biobert.cli import start_job, write_results
from biobert.errors import InputError
from biobert.progress import Progress
from biobert.tokenization import FullTokenizer


def softmax(logits):
    z = logits - logits.max(-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)


def _file(data_dir, *names):
    for name in names:
        path = os.path.join(data_dir, name)
        if os.path.isfile(path):
            return path
    raise InputError(f"none of {', '.join(names)} found in the data directory", path=data_dir)


# ----------------------------------------------------------------------------------------------------------
# Task adapters

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
        weights = tf.cast(batch["loss_weights"], tf.float32)
        ce = tf.keras.losses.sparse_categorical_crossentropy(batch["label_ids"], logits, from_logits=True)
        return tf.reduce_sum(ce * weights) / tf.maximum(tf.reduce_sum(weights), 1.0)

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

    def predict_text(self, trainer, documents, tokenizer, FLAGS, log, info):
        """Entity records with character offsets for raw documents (see biobert.rawtext)."""
        from biobert.segmentation import NLTKSegmenter

        began = time.time()
        segmenter = NLTKSegmenter()
        log.info(f"sentence segmentation: {segmenter.source}")
        tagger = rawtext.NerTagger(tokenizer, self.label_map, FLAGS.max_seq_length, segmenter,
                                   default_type=info.get("entity_type", "entity"))
        features, plan = tagger.features(documents)
        probs = infer(trainer, self, features, FLAGS.predict_batch_size, FLAGS.max_seq_length, log,
                      "predict") if features else []
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
        valid = tf.cast(batch["valid"], tf.float32)
        ce = tf.keras.losses.sparse_categorical_crossentropy(batch["label"], logits, from_logits=True)
        return tf.reduce_sum(ce * valid) / tf.maximum(tf.reduce_sum(valid), 1.0)

    def outputs(self, features, logits_by_example):
        return [softmax(lg) for lg in logits_by_example]

    def evaluate(self, examples, features, probs):
        pred = [relation.LABELS[int(np.argmax(p))] for p in probs]
        result = re_eval.evaluate(pred, [e.label for e in examples])
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

    def predict_text(self, trainer, documents, tokenizer, FLAGS, log, info):
        """Class probabilities and the predicted label for each given chemical-gene pair."""
        rows = [d for d in documents if d.extra["masked"] is not None]
        examples = [relation.Example(str(d.id), d.extra["masked"], relation.NEGATIVE_LABEL, d.line) for d in rows]
        features = relation.convert_examples(examples, tokenizer, FLAGS.max_seq_length)
        probs = infer(trainer, self, features, FLAGS.predict_batch_size, FLAGS.max_seq_length, log,
                      "predict") if features else []
        by_line = {d.line: p for d, p in zip(rows, probs)}
        records = []
        for doc in documents:
            record = {"id": doc.id, "text": doc.text}
            record.update({k: doc.extra[k] for k in ("chemical", "gene") if k in doc.extra})
            p = by_line.get(doc.line)
            record["label"] = None if p is None else relation.LABELS[int(np.argmax(p))]
            record["probabilities"] = {} if p is None else {k: round(float(v), 6) for k, v in zip(relation.LABELS, p)}
            records.append(record)
        return records

    def write_predictions(self, output_dir, examples, features, probs, log):
        relation.write_test_results(os.path.join(output_dir, "test_results.tsv"), np.stack(probs))
        pred = [relation.LABELS[int(np.argmax(p))] for p in probs]
        result = re_eval.evaluate(pred, [e.label for e in examples])
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


# ----------------------------------------------------------------------------------------------------------
# The job

def resolve_model_files(bert_config_file, vocab_file, init_checkpoint, bert_model=None):
    """(BertConfig or config path, vocab path). Given flags win; else --bert_model's preset (vocab_size from
    the vocabulary); else the files that come with --init_checkpoint (checkpoints.model_files)."""
    found = checkpoints.model_files(init_checkpoint)
    vocab_file = vocab_file or found["vocab"]
    if not vocab_file:
        raise InputError("--vocab_file is required (or an --init_checkpoint with vocab.txt in its folder)")
    if bert_config_file:
        return bert_config_file, vocab_file
    if bert_model:
        return preset_config(bert_model, vocab_file), vocab_file
    if found["config"]:
        return found["config"], vocab_file
    raise InputError("--bert_config_file is required (or --bert_model=tiny|base|large, or an --init_checkpoint "
                     "with config.json / bert_config.json in its folder)")


def preset_config(bert_model, vocab_file):
    """The BertConfig of a --bert_model preset, its vocab_size the number of lines of ``vocab_file``."""
    from biobert.config import BertConfig
    from biobert.flags import PRESETS

    with open(vocab_file, encoding="utf-8", errors="replace") as handle:
        vocab_size = sum(1 for _ in handle)
    return BertConfig(vocab_size=vocab_size, **PRESETS[bert_model])


def first_examples(examples, count):
    """The first ``count`` examples (all when None), never ending inside a sentence split into pieces."""
    if count is None or count >= len(examples):
        return examples
    while count < len(examples) and getattr(examples[count], "piece", 0) > 0:
        count += 1
    return examples[:count]


def run(task, FLAGS):
    """Train / evaluate / predict as the flags say. Returns a dict of the figures written."""
    if not (FLAGS.do_train or FLAGS.do_eval or FLAGS.do_predict or FLAGS.predict_file or FLAGS.export_dir):
        raise InputError("at least one of --do_train, --do_eval, --do_predict or --export_dir must be given")
    predict_file = FLAGS.predict_file or None             # implies --do_predict (on that file, not test.tsv)
    needs_data = FLAGS.do_train or FLAGS.do_eval or (FLAGS.do_predict and not predict_file)
    for name in ("data_dir", "output_dir") if needs_data else ("output_dir",):
        if not getattr(FLAGS, name):
            raise InputError(f"--{name} is required")
    if needs_data and not os.path.isdir(FLAGS.data_dir):
        raise InputError("data directory not found", path=FLAGS.data_dir)
    documents = task.read_predict_file(predict_file) if predict_file else None
    # Predicting only: the model comes from --init_checkpoint (or a checkpoint already in output_dir), and so do
    # its vocabulary, config and casing when that folder was written by a fine-tuning run.
    source = FLAGS.init_checkpoint or (None if FLAGS.do_train else FLAGS.output_dir)
    info = {} if FLAGS.do_train else checkpoints.read_model_info(source)
    do_lower_case = FLAGS.do_lower_case
    if "do_lower_case" in info:
        if FLAGS["do_lower_case"].present and bool(FLAGS.do_lower_case) != bool(info["do_lower_case"]):
            raise InputError(f"--do_lower_case={FLAGS.do_lower_case} but the model was fine-tuned with "
                             f"do_lower_case={info['do_lower_case']} (drop the flag to use the model's casing)",
                             path=os.path.join(checkpoints.checkpoint_folder(source), checkpoints.MODEL_INFO))
        do_lower_case = bool(info["do_lower_case"])
    config_file, vocab_file = resolve_model_files(FLAGS.bert_config_file, FLAGS.vocab_file, source,
                                                  FLAGS.bert_model)
    # Every data file is read and checked (columns, labels) before start_job creates output_dir and the run log:
    # a malformed corpus stops with its error line and nothing written.
    splits = {}
    phases = {}          # split -> {phase: seconds} (the predict line's profile)
    notes = []
    if FLAGS.do_train:
        splits["train"] = task.read(FLAGS.data_dir, "train")
    task.prepare_labels(FLAGS.output_dir, splits.get("train"), FLAGS.init_checkpoint)
    for split, do, flag in (("eval", FLAGS.do_eval, "max_eval_examples"),
                            ("test", FLAGS.do_predict and not predict_file, "max_predict_examples")):
        if do:
            began = time.time()
            examples = task.read(FLAGS.data_dir, split)
            task.check_labels(examples)
            splits[split] = first_examples(examples, getattr(FLAGS, flag))
            phases[split] = {"reading": time.time() - began}
            if getattr(FLAGS, flag):
                notes.append(f"{split}: the first {len(splits[split])} examples only (--{flag}={getattr(FLAGS, flag)})")
    bert_config, runtime, log = start_job(FLAGS, config_file)
    if FLAGS.do_train:
        log_label_counts(log, *task.label_counts(splits["train"]))
    for note in notes:
        log.info(note)
    tokenizer = FullTokenizer(vocab_file, do_lower_case=do_lower_case)
    start = time.time()
    features = {}
    for split, examples in splits.items():
        began = time.time()
        features[split] = task.features(examples, tokenizer, FLAGS.max_seq_length)
        phases.setdefault(split, {})["features"] = time.time() - began
    if splits:
        log.info("examples: " + ", ".join(f"{k} {len(v)}" for k, v in splits.items())
                 + f" (features in {time.time() - start:.1f}s)")

    global_batch = FLAGS.train_batch_size * runtime.num_replicas
    # Plainly shuffled batches of a task whose loss is a mean over rows are computed in length-sorted parts of
    # equal rows: the same loss and update with less padding. (A per-token mean would weight the parts
    # differently from the whole batch; length-grouped batches are short already.) Without XLA a step takes
    # the parts together; under XLA they are accumulated one by one, so that each part length compiles once.
    parts = 1 if FLAGS.group_by_length or task.per_token else training.batch_parts(FLAGS.train_batch_size)
    accumulate_parts = parts if FLAGS.use_xla else 1
    num_train_steps = 0
    if FLAGS.do_train:
        steps_per_epoch = len(features["train"]) // (global_batch * FLAGS.num_accumulation_steps)
        if steps_per_epoch == 0:
            raise InputError(f"{len(features['train'])} training examples do not fill one batch of {global_batch}",
                             path=FLAGS.data_dir)
        num_train_steps = max(1, int(steps_per_epoch * FLAGS.num_train_epochs))
        if FLAGS.num_train_steps:
            num_train_steps = FLAGS.num_train_steps
    train_config = training.TrainConfig(
        output_dir=FLAGS.output_dir, learning_rate=FLAGS.learning_rate, num_train_steps=max(num_train_steps, 1),
        num_warmup_steps=int(num_train_steps * FLAGS.warmup_proportion), decay_from_warmup=True, optimizer_type="adam",
        weight_decay_rate=FLAGS.weight_decay_rate, adam_bias_correction=FLAGS.adam_bias_correction,
        max_nonfinite_steps=FLAGS.max_nonfinite_steps,
        num_accumulation_steps=FLAGS.num_accumulation_steps * accumulate_parts,
        save_checkpoints_steps=FLAGS.save_checkpoints_steps, display_loss_steps=max(1, FLAGS.iterations_per_loop),
        use_xla=FLAGS.use_xla, **defaults.FINETUNING)
    trainer = training.Trainer(
        runtime, lambda: modeling.BertClassifier(bert_config, task.num_labels, per_token=task.per_token),
        task.loss_fn, train_config, log)

    if FLAGS.do_train:
        # Every worker, also with no checkpoint: they check they agree.
        trainer.restore_or_initialise(FLAGS.init_checkpoint)
        if trainer.resumed_from is None and not FLAGS.init_checkpoint:
            log.info("warning: no --init_checkpoint: training BERT from random initialisation")
        if runtime.is_chief:
            task.save_labels(FLAGS.output_dir)
            bert_config.to_json_file(os.path.join(FLAGS.output_dir, "bert_config.json"))
            checkpoints.save_model_files(FLAGS.output_dir, vocab_file, dict(task.model_info(FLAGS.data_dir),
                                                                do_lower_case=bool(do_lower_case),
                                                                max_seq_length=FLAGS.max_seq_length))
        sort_window = training.SORT_WINDOW if FLAGS.group_by_length else 1
        order = "length-grouped batches" if FLAGS.group_by_length else "plainly shuffled batches"
        if parts > 1:
            order += f", each computed in {parts} length-sorted parts of {global_batch // parts} rows"
            order += " (accumulated)" if accumulate_parts > 1 else ""
        # The data position: micro-batches consumed so far (parts accumulated one by one count singly).
        start = int(trainer.consumed_batches.numpy()) // accumulate_parts
        batches = training.training_batches(features["train"], global_batch, FLAGS.max_seq_length,
                                            seed=FLAGS.seed, start_step=start,
                                            sort_window=sort_window, parts=parts,
                                            pad_multiple=training.pad_multiple(FLAGS.use_xla))
        if accumulate_parts > 1:
            batches = training.flat_parts(batches)
        log.info(f"train: {len(features['train'])} examples, global batch {global_batch}, {num_train_steps} steps, "
                 f"{train_config.num_warmup_steps} warm-up steps, {order}")
        trainer.fit(batches)
    else:
        # Evaluating a saved model (output_dir's newest, else --init_checkpoint): the results carry the step it was
        # saved at, as the original's estimator did.
        source = checkpoints.latest_checkpoint(FLAGS.output_dir) or FLAGS.init_checkpoint
        if not source:
            raise InputError("nothing to evaluate: no checkpoint in output_dir and no --init_checkpoint",
                             path=FLAGS.output_dir)
        trainer.load_weights(source, require_heads=True, step=trainer.global_step)

    # From here on the weights stay as they are: the products may keep their weight layouts (bfloat16 on a CPU).
    with modeling.fixed_weights():
        results = {"global_step": int(trainer.global_step.numpy())}
        for split, batch_size, do in (("eval", FLAGS.eval_batch_size, FLAGS.do_eval),
                                      ("test", FLAGS.predict_batch_size, FLAGS.do_predict and not predict_file)):
            if not do:
                continue
            probs = infer(trainer, task, features[split], batch_size, FLAGS.max_seq_length, log, split,
                          phases=phases[split])
            if split == "eval":
                figures = task.evaluate(splits[split], features[split], probs)
                results.update(figures)
                if runtime.is_chief:
                    write_results(os.path.join(FLAGS.output_dir, "eval_results.txt"), results)
                log.log((), figures, text="eval: " + ", ".join(f"{k} = {v:.4f}" for k, v in figures.items()))
                trainer.write_summaries(results["global_step"], figures, prefix="eval/")
            elif runtime.is_chief:
                began = time.time()
                results.update(task.write_predictions(FLAGS.output_dir, splits[split], features[split], probs, log))
                phases[split]["decoding and writing"] = time.time() - began
                log_profile(log, split, splits[split], phases[split])
        if predict_file:
            info = info or task.model_info(FLAGS.data_dir)
            records = task.predict_text(trainer, documents, tokenizer, FLAGS, log, info)
            if runtime.is_chief:
                path = os.path.join(FLAGS.output_dir, "predictions.jsonl")
                rawtext.write_jsonl(path, records)
                log.info(f"wrote {len(records)} records to {path}")
    if FLAGS.export_dir and runtime.is_chief:
        from biobert import export

        files = {"vocab.txt": vocab_file, "bert_config.json": config_file}
        if task.per_token:
            task.save_labels(FLAGS.output_dir)
            files["label_map.json"] = os.path.join(FLAGS.output_dir, task.label_file)
        export.export(FLAGS.export_dir, trainer.variables, bert_config, task.num_labels, task.per_token, vocab_file,
                      do_lower_case, FLAGS.max_seq_length, files, label_map=getattr(task, "label_map", None),
                      info=info or task.model_info(FLAGS.data_dir), log=log.info)
    log.log((), {k: v for k, v in results.items()})
    log.close()
    return results


def log_label_counts(log, source, counts):
    """One line before training: the label set and each label's count (and share) in the training data, so that
    a stray label shows before any compute is spent; the counts also go to the run log as train_label_counts."""
    total = max(sum(counts.values()), 1)
    log.log((), {"train_label_counts": counts},
            text=f"label set ({source}), {len(counts)} labels, with their counts in the training data: "
                 + ", ".join(f"{label} {n} ({100 * n / total:.1f}%)" for label, n in counts.items()))


def log_profile(log, split, examples, phases):
    """One line: where the time of predicting ``split`` went (reading, features, batching, model, outputs,
    decoding and writing) and the words (NER) or examples per second of the whole."""
    total = sum(phases.values())
    unit = "words" if examples and hasattr(examples[0], "words") else "examples"
    words = sum(len(e) for e in examples) if unit == "words" else len(examples)
    log.log((), {f"predict_{split}_{k.replace(' ', '_')}_s": v for k, v in phases.items()},
            text=f"predict {split}: {words} {unit} in {total:.1f}s ({words / max(total, 1e-9):.0f} {unit}/s; "
                 + ", ".join(f"{k} {v:.1f}s" for k, v in phases.items()) + ")")


def infer(trainer, task, features, batch_size, max_seq_length, log, split, phases=None):
    """Model outputs per example (probabilities), with throughput and latency percentiles in the log, and a
    progress line (examples done of total) every 30 s (biobert.progress). ``phases`` (a dict) receives the
    seconds of batching, the model and the outputs (softmax)."""
    logits = [None] * len(features)
    latencies, start = [], time.time()
    batches = training.inference_batches(features, batch_size, max_seq_length,
                                         pad_multiple=training.pad_multiple(trainer.config.use_xla))
    first = True
    done = 0
    spent = {"batching": 0.0, "model": 0.0, "outputs": 0.0}
    progress = Progress(split, total=len(features), emit=log.info)
    while True:
        began = time.time()
        item = next(batches, None)
        spent["batching"] += time.time() - began
        if item is None:
            break
        idx, batch = item
        began = time.time()
        out = next(trainer.predict([batch]))
        if not first:
            latencies.append(time.time() - began)
        spent["model"] += time.time() - began
        first = False
        for row, i in enumerate(idx):
            logits[i] = out[row]
        done += len(idx)
        progress.update(done)
    elapsed = time.time() - start
    stats = {"throughput_val": len(features) / elapsed if elapsed else 0.0}
    if latencies:
        for q in (50, 90, 95, 99, 100):
            stats[f"latency_p{q}_ms"] = 1000 * float(np.percentile(latencies, q))
    log.log((), stats, text=f"{split}: {len(features)} examples in {elapsed:.1f}s "
                            f"({stats['throughput_val']:.1f} sentences/s)")
    began = time.time()
    outputs = task.outputs(features, logits)
    spent["outputs"] = time.time() - began
    if phases is not None:
        phases.update(spent)
    return outputs
