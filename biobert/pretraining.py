"""The pre-training job (masked LM + next-sentence prediction) on the shared Trainer.

Data: TFRecords from create_pretraining_data.py (biobert.pretraining_data). The model is BertPretrainer, whose
``cls/...`` heads tie the MLM output to the word embeddings as Google's BERT, so Google/BioBERT checkpoints load
with their heads. LAMB (or Adam), warm-up + polynomial decay, gradient accumulation, AMP and XLA come from the
shared loop; so do checkpoints and resuming.

Input: each worker reads only its share of the record files (of the records, when there are fewer files than
workers) and batches it for its own replicas; at every checkpoint each worker also saves its input position
(the tf.data iterator state: files, offsets, shuffle buffer) under ``<output_dir>/input_position/``, so a resumed
run continues the stream where it stopped without re-reading what it consumed.
"""
import glob
import os
import time

import numpy as np
import tensorflow as tf

from biobert import checkpoints, defaults, modeling, pretraining_data, training
from biobert.errors import InputError
from biobert.fileio import write_results
from biobert.job import start_job


def pretraining_loss(batch, outputs):
    """Masked-LM cross-entropy averaged over real predictions, plus next-sentence cross-entropy."""
    mlm_logits, nsp_logits = outputs
    weights = tf.cast(batch["masked_lm_weights"], tf.float32)
    mlm = tf.keras.losses.sparse_categorical_crossentropy(batch["masked_lm_ids"], mlm_logits, from_logits=True)
    mlm_loss = tf.reduce_sum(mlm * weights) / (tf.reduce_sum(weights) + 1e-5)
    nsp_labels = tf.reshape(batch["next_sentence_labels"], [-1])
    nsp_loss = tf.reduce_mean(
        tf.keras.losses.sparse_categorical_crossentropy(nsp_labels, nsp_logits, from_logits=True))
    return mlm_loss + nsp_loss


def log_softmax(logits):
    shifted = logits - logits.max(-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))


def evaluate(trainer, batches, max_steps, log=None, progress_seconds=30.0):
    """Masked-LM accuracy and loss, next-sentence accuracy and loss over up to ``max_steps`` batches (a progress
    line at least every ``progress_seconds``)."""
    mlm_correct = mlm_loss = mlm_count = nsp_correct = nsp_loss = nsp_count = 0.0
    steps = 0
    last_report = time.time()
    for batch in batches:
        if steps >= max_steps:
            break
        if log is not None and time.time() - last_report >= progress_seconds:
            log.info(f"eval: {steps} of at most {max_steps} batches")
            last_report = time.time()
        mlm_logits, nsp_logits = next(trainer.predict([batch]))
        w = batch["masked_lm_weights"]
        picked = np.take_along_axis(log_softmax(mlm_logits), batch["masked_lm_ids"][..., None], -1)[..., 0]
        mlm_loss += float(-(picked * w).sum())
        mlm_correct += float(((mlm_logits.argmax(-1) == batch["masked_lm_ids"]) * w).sum())
        mlm_count += float(w.sum())
        labels = batch["next_sentence_labels"].reshape(-1)
        nsp_loss += float(-log_softmax(nsp_logits)[np.arange(len(labels)), labels].sum())
        nsp_correct += float((nsp_logits.argmax(-1) == labels).sum())
        nsp_count += len(labels)
        steps += 1
    if steps == 0:
        raise InputError("no evaluation batches: the eval files are empty or smaller than one batch")
    return {"masked_lm_accuracy": mlm_correct / max(mlm_count, 1), "masked_lm_loss": mlm_loss / max(mlm_count, 1),
            "next_sentence_accuracy": nsp_correct / nsp_count, "next_sentence_loss": nsp_loss / nsp_count,
            "eval_steps": steps}


def run(settings):
    """Train and/or evaluate as ``settings`` say (biobert.job.pretraining_settings). Returns the figures written."""
    config, runtime, log = start_job(settings, settings.bert_config)
    trainer = training.Trainer(runtime, lambda: modeling.BertPretrainer(config), pretraining_loss,
                               train_config(settings), log)
    # Every worker, also with no checkpoint: they check they agree.
    step = trainer.restore_or_initialise(settings.init_checkpoint, train=settings.do_train)
    if trainer.resumed_from is None and not settings.init_checkpoint and not settings.do_train:
        raise InputError("nothing to evaluate: no checkpoint in output_dir and no --init_checkpoint",
                         path=settings.output_dir)
    results = {}
    for files in ([settings.input_files_dir] if settings.do_train else []) + \
            ([settings.eval_files_dir] if settings.do_eval else []):
        check_records(files, settings.max_seq_length, settings.max_predictions_per_seq)
    eval_dataset = None
    if settings.do_eval:
        eval_dataset = pretraining_data.pretraining_dataset(
            settings.eval_files_dir, settings.max_seq_length, settings.max_predictions_per_seq,
            settings.eval_batch_size, is_training=False, seed=settings.seed)
    if settings.do_train:
        if runtime.is_chief:
            config.to_json_file(os.path.join(settings.output_dir, "bert_config.json"))
            save_vocabulary(settings, log)
        if eval_dataset is not None and step == 0 and settings.eval_before_training:
            # The "before" figure on the same held-out records: what training is measured against.
            results.update({f"before_{k}": v for k, v in
                            held_out_evaluation(settings, trainer, eval_dataset, log, "eval before training").items()})
        train(settings, trainer, runtime, step, log)
        results["global_step"] = int(trainer.global_step.numpy())
    if settings.do_eval:
        results.update(held_out_evaluation(settings, trainer, eval_dataset, log, "eval"))
        results["global_step"] = int(trainer.global_step.numpy())
        if runtime.is_chief:
            write_results(os.path.join(settings.output_dir, "eval_results.txt"), results)
    log.close()
    return results


def train_config(settings):
    """The Trainer's configuration. NVIDIA's schedule: LAMB decays with power 0.5 from step 0; Adam linearly,
    from the peak at the end of warm-up (NVIDIA's "adjusted_init_lr", which avoids a step down when warm-up
    ends); --poly_power overrides the power."""
    lamb = settings.optimizer_type == "lamb"
    power = settings.poly_power if settings.poly_power is not None else (0.5 if lamb else 1.0)
    return training.TrainConfig(
        output_dir=settings.output_dir, learning_rate=settings.learning_rate,
        num_train_steps=settings.num_train_steps, num_warmup_steps=settings.num_warmup_steps,
        optimizer_type=settings.optimizer_type, poly_power=power, decay_from_warmup=not lamb,
        max_nonfinite_steps=settings.max_nonfinite_steps, num_accumulation_steps=settings.num_accumulation_steps,
        allreduce_post_accumulation=settings.allreduce_post_accumulation,
        save_checkpoints_steps=settings.save_checkpoints_steps, display_loss_steps=max(1, settings.display_loss_steps),
        init_loss_scale=settings.init_loss_scale, use_xla=settings.use_xla, **defaults.PRETRAINING)


def train(settings, trainer, runtime, step, log):
    """Train on this worker's share of the training records, from the input position saved with the checkpoint
    resumed at ``step`` (else skipping the batches already trained on)."""
    global_batch = settings.train_batch_size * runtime.num_replicas
    context = tf.distribute.InputContext(num_input_pipelines=runtime.num_workers,
                                         input_pipeline_id=runtime.worker_index,
                                         num_replicas_in_sync=runtime.num_replicas)
    dataset = pretraining_data.pretraining_dataset(
        settings.input_files_dir, settings.max_seq_length, settings.max_predictions_per_seq,
        global_batch // runtime.num_workers, is_training=True, seed=settings.seed, input_context=context)
    position = InputPosition(settings.output_dir, runtime.worker_index)
    iterator = iter(dataset)
    consumed = int(trainer.consumed_batches.numpy())
    if consumed and not position.restore(iterator, step, log):
        log.info(f"no saved input position for step {step}: skipping {consumed} already-trained batches")
        iterator = iter(dataset.skip(consumed))
    trainer.fit(iterator, per_worker=True, rows_per_batch=global_batch,
                on_save=lambda at: position.save(iterator, at))


def held_out_evaluation(settings, trainer, dataset, log, label):
    """``evaluate`` on the eval records (up to --max_eval_steps batches) at the current step, logged (run log,
    TensorBoard ``eval/`` at that step) and returned with its throughput."""
    start = time.time()
    figures = evaluate(trainer, dataset.as_numpy_iterator(), settings.max_eval_steps, log)
    figures["throughput_val"] = figures["eval_steps"] * settings.eval_batch_size / (time.time() - start)
    step = int(trainer.global_step.numpy())
    log.log((), figures, text=f"{label} (step {step}): " + ", ".join(f"{k} = {v:.4f}" for k, v in figures.items()))
    trainer.write_summaries(step, figures, prefix="eval/")
    return figures


def save_vocabulary(settings, log):
    """Make the output folder a complete --init_checkpoint for run_ner.py / run_re.py: vocab.txt (the job's
    vocabulary: --vocab_file, else the one beside --init_checkpoint) and model_info.json (casing, sequence
    length), beside the bert_config.json and checkpoints."""
    if not settings.vocab_file:
        log.info("warning: no vocabulary known (--vocab_file, or vocab.txt beside --init_checkpoint): the output "
                 "folder gets no vocab.txt, and fine-tuning from it needs --vocab_file")
        return
    if not os.path.isfile(settings.vocab_file):
        raise InputError("vocabulary file not found", path=settings.vocab_file)
    checkpoints.save_model_files(settings.output_dir, settings.vocab_file,
                                 {"do_lower_case": bool(settings.do_lower_case),
                                  "max_seq_length": settings.max_seq_length})


class InputPosition:
    """One worker's input position (its tf.data iterator state) at each checkpointed step, in
    ``<output_dir>/input_position/worker_<i>/step-<N>``; the newest ``keep`` are kept."""

    def __init__(self, output_dir, worker_index, keep=3):
        self.folder = os.path.join(output_dir, "input_position", f"worker_{worker_index}")
        self.keep = keep

    def save(self, iterator, step):
        """Write the position at ``step`` atomically: under a temporary prefix, renamed into place once whole (a
        failed write, e.g. a full disk, leaves no partial files and raises InputError); then drop old ones."""
        os.makedirs(self.folder, exist_ok=True)
        final = os.path.join(self.folder, f"step-{step}")
        tmp = os.path.join(self.folder, f".tmp-step-{step}")
        try:
            tf.train.Checkpoint(input=iterator).write(tmp)
        except (tf.errors.OpError, OSError) as err:
            for produced in glob.glob(glob.escape(tmp) + ".*"):
                os.remove(produced)
            detail = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise InputError(f"cannot write the input position for step {step} ({detail}); the previous checkpoint "
                             "is intact: free disk space and run the same command to resume",
                             path=self.folder) from None
        for produced in glob.glob(glob.escape(tmp) + ".*"):
            os.replace(produced, final + produced[len(tmp):])
        saved = sorted({int(os.path.basename(p).split(".")[0][5:]) for p in glob.glob(os.path.join(self.folder,
                                                                                              "step-*"))})
        for old in saved[:-self.keep]:
            for path in glob.glob(os.path.join(self.folder, f"step-{old}.*")):
                os.remove(path)

    def restore(self, iterator, step, log):
        """True when the position saved at ``step`` was restored into ``iterator``."""
        prefix = os.path.join(self.folder, f"step-{step}")
        if not os.path.exists(prefix + ".index"):
            return False
        try:
            tf.train.Checkpoint(input=iterator).read(prefix).assert_consumed()
        except (tf.errors.OpError, AssertionError, ValueError) as err:
            log.info(f"cannot read the input position {prefix} ({type(err).__name__}): re-reading the input instead")
            return False
        log.info(f"input continues from its position at step {step} ({prefix})")
        return True


def check_records(file_patterns, max_seq_length, max_predictions_per_seq):
    """Stop with a clear message when the records were made for another sequence length or prediction count."""
    files = pretraining_data.list_record_files(file_patterns)
    for serialized in tf.data.TFRecordDataset(files[0]).take(1):
        example = tf.train.Example.FromString(serialized.numpy())
        features = example.features.feature
        for key, expected, flag in (("input_ids", max_seq_length, "max_seq_length"),
                                    ("masked_lm_ids", max_predictions_per_seq, "max_predictions_per_seq")):
            if key not in features:
                raise InputError(f"not a BERT pre-training record: no '{key}' feature", path=files[0])
            found = len(features[key].int64_list.value)
            if found != expected:
                raise InputError(f"records have {key} of length {found}, but --{flag}={expected}: create the "
                                 f"data with the same settings or change the flag", path=files[0])
        return files
    raise InputError("the first record file is empty", path=files[0])
