"""The fine-tuning job shared by run_ner.py and run_re.py: data -> features -> Trainer -> eval -> predictions.

A task adapter (biobert.tasks) supplies what differs: reading its files, the head (per token or pooled), the
loss, the evaluation figures and the prediction files. Everything else (strategy, precision, XLA, schedule,
checkpoints, resume, logging) is the shared core's. ``run`` takes the job's Settings (biobert.job), made once from
the flags; its steps, in order: read, start the job, features, the trainer, train (or load the model), evaluate
and predict the test set, predict a file, export.
"""
import collections
import os
import time

import numpy as np

from biobert import batching, checkpoints, defaults, modeling, rawtext, training
from biobert.errors import InputError
from biobert.fileio import write_results
from biobert.job import start_job
from biobert.progress import Progress
from biobert.tokenization import FullTokenizer

# How the training batches are formed and counted (train_plan).
TrainPlan = collections.namedtuple("TrainPlan", "global_batch parts accumulate_parts num_train_steps")


def run(task, settings):
    """Train / evaluate / predict as ``settings`` say. Returns a dict of the figures written."""
    # Every data file is read and checked (columns, labels) before start_job creates output_dir and the run log:
    # a malformed corpus stops with its error line and nothing written.
    documents = task.read_predict_file(settings.predict_file) if settings.predict_file else None
    splits, phases, notes = read_splits(task, settings)
    bert_config, runtime, log = start_job(settings, settings.bert_config)
    if settings.do_train:
        log_label_counts(log, *task.label_counts(splits["train"]))
    for note in notes:
        log.info(note)
    tokenizer = FullTokenizer(settings.vocab_file, do_lower_case=settings.do_lower_case)
    features = make_features(task, splits, tokenizer, settings.max_seq_length, phases, log)
    plan = train_plan(task, settings, runtime, len(features.get("train", ())))
    trainer = training.Trainer(
        runtime, lambda: modeling.BertClassifier(bert_config, task.num_labels, per_token=task.per_token),
        task.loss_fn, train_config(settings, plan), log)
    if settings.do_train:
        train(task, settings, trainer, plan, features["train"], runtime, bert_config, log)
    else:
        load_model(settings, trainer)
    results = {"global_step": int(trainer.global_step.numpy())}
    with modeling.fixed_weights():      # no training step follows: bfloat16 products may keep their weight layouts
        evaluate_and_test(task, settings, trainer, splits, features, phases, runtime, log, results)
        if settings.predict_file:
            predict_file(task, settings, trainer, documents, tokenizer, runtime, log)
    if settings.export_dir and runtime.is_chief:
        export_model(task, settings, trainer, bert_config, log)
    log.log((), {k: v for k, v in results.items()})
    log.close()
    return results


def read_splits(task, settings):
    """The examples of each split the job uses ({split: examples}), the label set prepared from them (the
    task's), the seconds spent reading each ({split: {"reading": s}}) and the notes to log (examples cut)."""
    splits, phases, notes = {}, {}, []
    if settings.do_train:
        splits["train"] = task.read(settings.data_dir, "train")
    task.prepare_labels(settings.output_dir, splits.get("train"), settings.init_checkpoint)
    for split, do, flag, count in (("eval", settings.do_eval, "max_eval_examples", settings.max_eval_examples),
                                   ("test", settings.predict_test, "max_predict_examples",
                                    settings.max_predict_examples)):
        if do:
            began = time.time()
            examples = task.read(settings.data_dir, split)
            task.check_labels(examples)
            splits[split] = first_examples(examples, count)
            phases[split] = {"reading": time.time() - began}
            if count:
                notes.append(f"{split}: the first {len(splits[split])} examples only (--{flag}={count})")
    return splits, phases, notes


def first_examples(examples, count):
    """The first ``count`` examples (all when None), never ending inside a sentence split into pieces."""
    if count is None or count >= len(examples):
        return examples
    while count < len(examples) and getattr(examples[count], "piece", 0) > 0:
        count += 1
    return examples[:count]


def make_features(task, splits, tokenizer, max_seq_length, phases, log):
    """{split: the task's features of its examples}; the seconds of each go to ``phases``."""
    start = time.time()
    features = {}
    for split, examples in splits.items():
        began = time.time()
        features[split] = task.features(examples, tokenizer, max_seq_length)
        phases.setdefault(split, {})["features"] = time.time() - began
    if splits:
        log.info("examples: " + ", ".join(f"{k} {len(v)}" for k, v in splits.items())
                 + f" (features in {time.time() - start:.1f}s)")
    return features


def train_plan(task, settings, runtime, num_train_examples):
    """The global batch, its parts, and the number of optimizer steps (0 when not training)."""
    global_batch = settings.train_batch_size * runtime.num_replicas
    # Plainly shuffled batches of a task whose loss is a mean over rows are computed in length-sorted parts of
    # equal rows: the same loss and update with less padding. (A per-token mean would weight the parts
    # differently from the whole batch; length-grouped batches are short already.) Without XLA a step takes
    # the parts together; under XLA they are accumulated one by one, so that each part length compiles once.
    parts = 1 if settings.group_by_length or task.per_token else batching.batch_parts(settings.train_batch_size)
    accumulate_parts = parts if settings.use_xla else 1
    num_train_steps = 0
    if settings.do_train:
        steps_per_epoch = num_train_examples // (global_batch * settings.num_accumulation_steps)
        if steps_per_epoch == 0:
            raise InputError(f"{num_train_examples} training examples do not fill one batch of {global_batch}",
                             path=settings.data_dir)
        num_train_steps = max(1, int(steps_per_epoch * settings.num_train_epochs))
        if settings.num_train_steps:
            num_train_steps = settings.num_train_steps
    return TrainPlan(global_batch, parts, accumulate_parts, num_train_steps)


def train_config(settings, plan):
    """The Trainer's configuration: Adam, warm-up then linear decay, the plan's steps and accumulation."""
    return training.TrainConfig(
        output_dir=settings.output_dir, learning_rate=settings.learning_rate,
        num_train_steps=max(plan.num_train_steps, 1),
        num_warmup_steps=int(plan.num_train_steps * settings.warmup_proportion), decay_from_warmup=True,
        optimizer_type="adam", weight_decay_rate=settings.weight_decay_rate,
        adam_bias_correction=settings.adam_bias_correction, max_nonfinite_steps=settings.max_nonfinite_steps,
        num_accumulation_steps=settings.num_accumulation_steps * plan.accumulate_parts,
        save_checkpoints_steps=settings.save_checkpoints_steps, display_loss_steps=max(1, settings.display_loss_steps),
        use_xla=settings.use_xla, **defaults.FINETUNING)


def train(task, settings, trainer, plan, features, runtime, bert_config, log):
    """Resume (or start from --init_checkpoint), save the files a prediction run needs, and train."""
    # Every worker, also with no checkpoint: they check they agree.
    trainer.restore_or_initialise(settings.init_checkpoint)
    if trainer.resumed_from is None and not settings.init_checkpoint:
        log.info("warning: no --init_checkpoint: training BERT from random initialisation")
    if runtime.is_chief:
        task.save_labels(settings.output_dir)
        bert_config.to_json_file(os.path.join(settings.output_dir, "bert_config.json"))
        info = dict(task.model_info(settings.data_dir), do_lower_case=bool(settings.do_lower_case),
                    max_seq_length=settings.max_seq_length)
        checkpoints.save_model_files(settings.output_dir, settings.vocab_file, info)
    order = "length-grouped batches" if settings.group_by_length else "plainly shuffled batches"
    if plan.parts > 1:
        order += f", each computed in {plan.parts} length-sorted parts of {plan.global_batch // plan.parts} rows"
        order += " (accumulated)" if plan.accumulate_parts > 1 else ""
    # The data position: micro-batches consumed so far (parts accumulated one by one count singly).
    start = int(trainer.consumed_batches.numpy()) // plan.accumulate_parts
    batches = batching.training_batches(features, plan.global_batch, settings.max_seq_length,
                                        seed=settings.seed, start_step=start,
                                        sort_window=batching.SORT_WINDOW if settings.group_by_length else 1,
                                        parts=plan.parts, pad_multiple=batching.pad_multiple(settings.use_xla))
    if plan.accumulate_parts > 1:
        batches = batching.flat_parts(batches)
    log.info(f"train: {len(features)} examples, global batch {plan.global_batch}, {plan.num_train_steps} steps, "
             f"{trainer.config.num_warmup_steps} warm-up steps, {order}")
    trainer.fit(batches)


def load_model(settings, trainer):
    """Evaluating a saved model (output_dir's newest, else --init_checkpoint): the results carry the step it was
    saved at, as the original's estimator did."""
    source = checkpoints.latest_checkpoint(settings.output_dir) or settings.init_checkpoint
    if not source:
        raise InputError("nothing to evaluate: no checkpoint in output_dir and no --init_checkpoint",
                         path=settings.output_dir)
    trainer.load_weights(source, require_heads=True, step=trainer.global_step)


def evaluate_and_test(task, settings, trainer, splits, features, phases, runtime, log, results):
    """The eval split's figures (eval_results.txt, the run log, TensorBoard) and the test split's prediction
    files and figures, added to ``results``."""
    for split, batch_size, do in (("eval", settings.eval_batch_size, settings.do_eval),
                                  ("test", settings.predict_batch_size, settings.predict_test)):
        if not do:
            continue
        probs = infer(trainer, task, features[split], batch_size, settings.max_seq_length, log, split,
                      phases=phases[split])
        if split == "eval":
            figures = task.evaluate(splits[split], features[split], probs)
            results.update(figures)
            if runtime.is_chief:
                write_results(os.path.join(settings.output_dir, "eval_results.txt"), results)
            log.log((), figures, text="eval: " + ", ".join(f"{k} = {v:.4f}" for k, v in figures.items()))
            trainer.write_summaries(results["global_step"], figures, prefix="eval/")
        elif runtime.is_chief:
            began = time.time()
            results.update(task.write_predictions(settings.output_dir, splits[split], features[split], probs, log))
            phases[split]["decoding and writing"] = time.time() - began
            log_profile(log, split, splits[split], phases[split])


def predict_file(task, settings, trainer, documents, tokenizer, runtime, log):
    """Predict on --predict_file's documents and write <output_dir>/predictions.jsonl."""
    def predict(features):
        return infer(trainer, task, features, settings.predict_batch_size, settings.max_seq_length, log,
                     "predict") if features else []

    records = task.predict_text(documents, tokenizer, predict, settings.max_seq_length, log,
                                settings.model_info or task.model_info(settings.data_dir))
    if runtime.is_chief:
        path = os.path.join(settings.output_dir, "predictions.jsonl")
        rawtext.write_jsonl(path, records)
        log.info(f"wrote {len(records)} records to {path}")


def export_model(task, settings, trainer, bert_config, log):
    """Write the model as a SavedModel to --export_dir, with its vocabulary, config and label map beside it."""
    from biobert import export

    files = {"vocab.txt": settings.vocab_file, "bert_config.json": settings.bert_config}
    if task.per_token:
        task.save_labels(settings.output_dir)
        files["label_map.json"] = os.path.join(settings.output_dir, task.label_file)
    export.export(settings.export_dir, trainer.variables, bert_config, task.num_labels, task.per_token,
                  settings.vocab_file, settings.do_lower_case, settings.max_seq_length, files,
                  label_map=getattr(task, "label_map", None),
                  info=settings.model_info or task.model_info(settings.data_dir), log=log.info)


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
    batches = batching.inference_batches(features, batch_size, max_seq_length,
                                         pad_multiple=batching.pad_multiple(trainer.config.use_xla))
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
