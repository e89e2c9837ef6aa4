"""The one training / evaluation / prediction loop shared by NER, RE and pre-training.

Tasks differ in data and head only. A task hands the Trainer a model-building function, a loss function
``loss_fn(batch, outputs) -> scalar float32 mean loss`` and an iterator of global batches (dicts of numpy
arrays, batch = per-replica batch x replicas). The Trainer owns: the distribution strategy scope, mixed
precision (policy set by biobert.distribution; dynamic loss scaling under float16), XLA (the forward and
backward pass is ``jit_compile``d), gradient accumulation over micro-batches (all-reduce after accumulation),
the optimizer and schedule, logging (dllogger JSON lines + a readable progress line with throughput),
checkpoints every ``save_checkpoints_steps`` (keeping the latest) and resuming from output_dir.
"""
import contextlib
import dataclasses
import math
import os
import time

import numpy as np
import tensorflow as tf

from biobert import checkpoints, modeling, optimization
from biobert.batching import as_parts, prefetch
from biobert.defaults import TRAINING
from biobert.errors import InputError, Preempted
from biobert.runcontrol import (OTHER_WORKER, PREEMPTION, CollectiveWatchdog, TrainingDiverged, is_lost_contact,
                                worker_lost)


# ----------------------------------------------------------------------------------------------------------
# Compiled functions traced once


def relaxed_spec(structure):
    """TensorSpecs for the tensors of ``structure`` with every dimension unknown."""
    return tf.nest.map_structure(lambda t: tf.TensorSpec([None] * t.shape.rank, t.dtype), structure)


def one_trace(function, replicas):
    """``function`` (a tf.function taking batches) traced once for every batch shape: before its first call it is
    traced with every dimension unknown, and calls with any concrete shape then run that graph. (Left to itself,
    with reduce_retracing, it traces a batch's concrete shapes, then again and again while generalising them: three
    traces of the whole training step at the start of a run whose batches differ in length, some 5-20 s each.)
    Under XLA the compiled clusters still specialise per shape when they run. With several replicas the batches
    are distributed values, traced as they come."""
    if replicas > 1:
        return function
    traced = []

    def call(*args):
        if not traced:
            function.get_concrete_function(*relaxed_spec(args))
            traced.append(True)
        return function(*args)
    call.function = function
    return call


def _clock(seconds):
    seconds = int(max(seconds, 0))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


# ----------------------------------------------------------------------------------------------------------
# The trainer

LOSS_SCALE_GROWTH_STEPS = 1000      # finite steps in a row before the dynamic loss scale doubles (NVIDIA's TF1 BERT:
                                    # ExponentialUpdateLossScaleManager(incr_every_n_steps=1000))


@dataclasses.dataclass
class TrainConfig:
    """What the Trainer needs to know about a run. Fields named as flags start from the flags' defaults
    (biobert.defaults.TRAINING); the job sets the rest."""
    output_dir: str
    learning_rate: float                 # per replica: the run's peak rate is this x the number of replicas
    num_train_steps: int
    num_warmup_steps: int = 0
    optimizer_type: str = "adam"
    weight_decay_rate: float = TRAINING["weight_decay_rate"]
    clip_norm: float = 1.0
    poly_power: float = 1.0
    decay_from_warmup: bool = False      # True: the decay starts at the peak when warm-up ends (fine-tuning)
    adam_bias_correction: bool = TRAINING["adam_bias_correction"]   # False: Google's AdamWeightDecayOptimizer
    num_accumulation_steps: int = TRAINING["num_accumulation_steps"]
    allreduce_post_accumulation: bool = TRAINING["allreduce_post_accumulation"]
    save_checkpoints_steps: int = TRAINING["save_checkpoints_steps"]
    display_loss_steps: int = TRAINING["display_loss_steps"]
    progress_seconds: float = 30.0       # a progress line at least this often (and every display_loss_steps)
    max_nonfinite_steps: int = TRAINING["max_nonfinite_steps"]   # this many non-finite steps in a row stop the run
    init_loss_scale: float = TRAINING["init_loss_scale"]
    use_xla: bool = TRAINING["use_xla"]
    keep_checkpoints: int = 2            # the newest ones; a damaged newest one falls back to the one before


class Trainer:
    """Builds ``model_fn()`` inside the strategy scope, trains it, checkpoints it and runs inference.

    One training step, on any number of replicas and workers:
      1. every replica computes the gradient of its share of the global batch (times the loss scale under
         float16), accumulating ``num_accumulation_steps`` micro-batches;
      2. the gradients are summed over all replicas (one all-reduce per step with allreduce_post_accumulation,
         else one per micro-batch): from here every replica holds the same gradient of the global batch's mean loss;
      3. on that combined gradient, identically everywhere: unscale, global norm, finiteness, clipping by
         global norm (``clip_norm``);
      4. finite: the optimizer updates every copy of the weights and the step counts (global_step, the optimizer's
         iterations and so the schedule advance together); not finite: the step is skipped everywhere, the loss
         scale halves and nothing else changes. ``max_nonfinite_steps`` skipped steps in a row stop the run.
    """

    def __init__(self, runtime, model_fn, loss_fn, config: TrainConfig, log):
        self.runtime = runtime
        self.strategy = runtime.strategy
        self.config = config
        self.loss_fn = loss_fn
        self.log = log
        with self.strategy.scope():
            self.model = modeling.build(model_fn())
            self.variables = modeling.variable_map(self.model)
            self.dropout_states = modeling.dropout_states(self.model)
            # The original scaled the rate by the number of GPUs (hvd.size()): here by the replicas in sync,
            # whatever the launch (one process with N devices, N processes, nodes x GPUs).
            self.peak_learning_rate = config.learning_rate * runtime.num_replicas
            self.schedule = optimization.WarmupPolynomialDecay(
                self.peak_learning_rate, config.num_train_steps, config.num_warmup_steps, power=config.poly_power,
                decay_from_warmup=config.decay_from_warmup)
            self.optimizer = optimization.create_optimizer(
                config.optimizer_type, self.schedule, config.weight_decay_rate,
                bias_correction=config.adam_bias_correction)
            self.optimizer.set_variable_names(self.variables)
            self.trainable = list(self.model.trainable_variables)
            self.optimizer.build(self.trainable)
            self.global_step = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step")
            self.consumed_batches = tf.Variable(0, dtype=tf.int64, trainable=False, name="consumed_batches")
            self.nonfinite_in_a_row = tf.Variable(0, dtype=tf.int64, trainable=False, name="nonfinite_in_a_row")
            self.skipped_steps = tf.Variable(0, dtype=tf.int64, trainable=False, name="skipped_steps")
            self.loss_scale = tf.Variable(float(config.init_loss_scale) if runtime.loss_scaling else 1.0,
                                          dtype=tf.float32, trainable=False, name="loss_scale")
            self.good_steps = tf.Variable(0, dtype=tf.int64, trainable=False, name="loss_scale_good_steps")
            self.saved_replicas = tf.Variable(runtime.num_replicas, dtype=tf.int64, trainable=False,
                                              name="num_replicas")
            self.accumulators = self.loss_accumulator = None
            if config.num_accumulation_steps > 1:
                def local_sum(initial):
                    return tf.Variable(initial, trainable=False, synchronization=tf.VariableSynchronization.ON_READ,
                                       aggregation=tf.VariableAggregation.SUM)
                self.accumulators = [local_sum(tf.zeros(v.shape, v.dtype)) for v in self.trainable]
                self.loss_accumulator = local_sum(0.0)     # this replica's summed micro-batch losses
        self.resumed_from = None
        self._agreements = {}                 # _agree's traced collectives, by the number of values
        self.summary_writer = None
        if runtime.is_chief and config.output_dir:
            self.summary_writer = tf.summary.create_file_writer(os.path.join(config.output_dir, "tensorboard"))
        self._build_functions()

    def write_summaries(self, step, scalars, prefix=""):
        """TensorBoard scalars under ``<output_dir>/tensorboard/`` (chief only)."""
        if self.summary_writer is None:
            return
        with self.summary_writer.as_default():
            for name, value in scalars.items():
                if isinstance(value, (int, float, np.floating, np.integer)) and math.isfinite(float(value)):
                    tf.summary.scalar(prefix + name, float(value), step=int(step))
        self.summary_writer.flush()

    # ---- state ------------------------------------------------------------------------------------------
    OPTIONAL_STATE = ("train/consumed_batches", "train/skipped_steps", "train/nonfinite_in_a_row",
                      "train/num_replicas")

    def state_variables(self):
        """Everything a resumed run needs, by name: weights, optimizer slots, step, loss scale, dropout seeds,
        the data position."""
        state = dict(self.variables)
        state.update(self.dropout_states)
        for name, var in self.variables.items():
            if var.trainable:
                for slot, slot_var in self.optimizer.slots(var).items():
                    state[f"{name}/{slot}"] = slot_var
        state["global_step"] = self.global_step
        state["optimizer/iterations"] = self.optimizer.iterations
        state["train/consumed_batches"] = self.consumed_batches
        state["train/skipped_steps"] = self.skipped_steps
        state["train/nonfinite_in_a_row"] = self.nonfinite_in_a_row
        state["train/num_replicas"] = self.saved_replicas
        if self.runtime.loss_scaling:
            state["optimizer/loss_scale"] = self.loss_scale
            state["optimizer/loss_scale_good_steps"] = self.good_steps
        return state

    def save(self):
        step = int(self.global_step.numpy())
        if not self.runtime.is_chief:
            return None
        path = checkpoints.save_checkpoint(self.config.output_dir, step, self.state_variables(),
                                           keep=self.config.keep_checkpoints)
        self.log.info(f"saved checkpoint {path}")
        return path

    def restore_latest(self, train=True):
        """Resume from the newest checkpoint in output_dir, if any; returns the restored global step, and sets
        ``resumed_from`` (the prefix restored, or None): the one answer to "did this run resume?", which decides
        whether ``--init_checkpoint`` is loaded (never over a restored step).

        Every worker reads the checkpoint the chief names (the same output_dir); in a multi-worker run they
        check that they all resumed at the same step and stop at once if not. ``train``: a training loop follows,
        so from here a preemption signal is recorded for it (PREEMPTION.hold) rather than ending the process."""
        if train:
            PREEMPTION.hold()
        prefix, missing = self._restore_newest_readable()
        self.resumed_from = prefix
        if prefix is None:
            self._check_same_step_everywhere(0, "no checkpoint")
            return 0
        if any(name in self.dropout_states for name in missing):
            self.log.info(f"{prefix} holds no dropout seed state: resumed with new dropout masks")
        step = int(self.global_step.numpy())
        self._check_same_step_everywhere(step, prefix)
        saved = int(self.saved_replicas.numpy())
        if "train/num_replicas" not in missing and saved != self.runtime.num_replicas:
            raise InputError(f"cannot resume: the checkpoint was written by a run on {saved} replica(s) and this run "
                             f"has {self.runtime.num_replicas}; the global batch, learning rate and data position "
                             f"would change. Resume with {saved} replica(s) (GPUs x processes), or start a new "
                             f"--output_dir from it with --init_checkpoint", path=prefix)
        self.saved_replicas.assign(self.runtime.num_replicas)
        if "train/consumed_batches" in missing:
            self.consumed_batches.assign(step * self.config.num_accumulation_steps)
        self.log.info(f"resuming from {prefix} at step {step}")
        return step

    def restore_or_initialise(self, init_checkpoint=None, train=True):
        """Resume from output_dir (``restore_latest``); a run that did not resume, and only such a run, starts from
        the weights of ``init_checkpoint`` (if given). Returns the step training continues from."""
        step = self.restore_latest(train=train)
        if self.resumed_from is None and init_checkpoint:
            self.load_weights(init_checkpoint)
        return step

    def _restore_newest_readable(self):
        """Restore the newest checkpoint that reads whole; a damaged one (truncated, half-written by a process that
        died, a full disk) is skipped with a message. Returns (prefix, absent optional names) or (None, None)."""
        directory = self.config.output_dir
        candidates = checkpoints.resume_candidates(directory)
        for prefix in candidates:
            try:
                # Checkpoints written before the dropout seeds or data position were saved still resume.
                missing = checkpoints.restore_state(prefix, self.state_variables(),
                                                    optional=tuple(self.dropout_states) + self.OPTIONAL_STATE)
                return prefix, missing
            except InputError:
                raise                         # readable, but written by another configuration
            except Exception as err:          # noqa: BLE001 (a damaged bundle raises OpError, IndexError, ...)
                reason = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
                self.log.info(f"warning: checkpoint {prefix} cannot be read ({reason}); trying the one before")
        if candidates:
            raise InputError("no readable checkpoint: every checkpoint in output_dir is damaged (remove them to start "
                             "over, or use a new --output_dir)", path=directory)
        return None, None

    def _check_same_step_everywhere(self, step, what):
        """Stop at once unless every worker resumed at ``step``: the sums of the step and of its square over the
        workers, in int64 (exact at any step count), equal the workers' count times this worker's only when all
        hold the same step."""
        if self.runtime.num_workers <= 1:
            return
        workers = self.runtime.num_workers
        total, squares = self._agree([step, step * step])
        if total != workers * step or squares != workers * step * step:
            raise InputError(f"workers resumed at different steps (this worker: step {step} from {what}): every "
                             "worker must see the same output_dir (a shared file system)",
                             path=self.config.output_dir)

    def _agree(self, values):
        """The sums over the workers of the integers ``values`` (each worker gives its own): one collective across
        the workers, with no time limit (a peer may be restoring or saving), that also serves as a barrier. A lost
        peer raises WorkerLost."""
        summed = self._agreements.get(len(values))
        if summed is None:                    # traced once per length, then every checkpoint runs that graph
            @tf.function
            def summed(value):
                return self.strategy.reduce(tf.distribute.ReduceOp.SUM, self.strategy.run(tf.identity, args=(value,)),
                                            axis=None)
            self._agreements[len(values)] = summed
        local = self.runtime.num_replicas // max(self.runtime.num_workers, 1)
        with self._lost_contact():
            return [int(v) // local for v in summed(tf.constant([int(v) for v in values], tf.int64)).numpy()]

    @contextlib.contextmanager
    def _lost_contact(self):
        """In a multi-worker run, a collective that fails for a lost, hung or unreachable peer (or NCCL) becomes
        the one-line WorkerLost error."""
        try:
            yield
        except tf.errors.OpError as err:
            if self.runtime.num_workers <= 1 or not is_lost_contact(err):
                raise
            raise worker_lost(err, self.config.output_dir) from None

    def load_weights(self, path, **kwargs):
        return checkpoints.load_weights(self.variables, path, log=self.log.info, **kwargs)

    # ---- compiled steps ---------------------------------------------------------------------------------
    def _build_functions(self):
        cfg, runtime, strategy = self.config, self.runtime, self.strategy
        model, loss_fn, optimizer, trainable = self.model, self.loss_fn, self.optimizer, self.trainable
        replicas = runtime.num_replicas
        # Each replica's loss is a mean over its rows; scaled so that the SUM over replicas and micro-batches
        # is the gradient of the global batch's mean loss.
        scale = 1.0 / (replicas * cfg.num_accumulation_steps)
        loss_scaling = runtime.loss_scaling
        accumulators, loss_accumulator = self.accumulators, self.loss_accumulator
        reduce_each_micro_batch = accumulators is not None and not cfg.allreduce_post_accumulation

        @tf.function(jit_compile=cfg.use_xla, reduce_retracing=True)
        def gradients(batch):
            parts = as_parts(batch)
            with tf.GradientTape() as tape:
                # A tuple holds equal-row parts of one batch: its loss is the mean of the parts' losses.
                loss = tf.add_n([tf.cast(loss_fn(part, model(part, training=True)), tf.float32)
                                 for part in parts]) / len(parts)
                objective = loss * scale
                if loss_scaling:
                    objective = objective * self.loss_scale
            grads = tape.gradient(objective, trainable)
            # Embedding lookups give IndexedSlices; the all-reduce, accumulators and optimizers work on dense ones.
            return loss, [tf.convert_to_tensor(g) for g in grads]

        def all_reduce(grads):
            if replicas == 1:
                return grads
            context = tf.distribute.get_replica_context()
            return context.all_reduce(tf.distribute.ReduceOp.SUM, grads)

        def accumulate_replica(batch):
            loss, grads = gradients(batch)
            if reduce_each_micro_batch:
                grads = all_reduce(grads)
            for a, g in zip(accumulators, grads):
                a.assign_add(g)
            loss_accumulator.assign_add(loss)

        def final_replica(batch, stop):
            """The last micro-batch of a step: the step's combined gradient, unscaled and clipped, whether it is
            finite, how many replicas asked to stop (``stop``: 1.0 on every replica of a worker that caught a
            preemption signal) and the step's mean loss over every micro-batch and replica. The stop flags and the
            loss are summed with the gradients, in the step's one all-reduce, so every replica gets the same
            values without a collective of their own."""
            loss, grads = gradients(batch)
            if accumulators is not None:
                loss = loss_accumulator.read_value() + loss
                loss_accumulator.assign(tf.zeros_like(loss_accumulator))
                if not reduce_each_micro_batch:
                    grads = [a.read_value() + g for a, g in zip(accumulators, grads)]
            # (identity: placed on this replica's device)
            reduced = all_reduce(grads + [tf.identity(stop), loss * scale])
            grads, stop, loss = reduced[:-2], reduced[-2], reduced[-1]
            if accumulators is not None:
                if reduce_each_micro_batch:
                    grads = [a.read_value() + g for a, g in zip(accumulators, grads)]
                for a in accumulators:
                    a.assign(tf.zeros_like(a))
            if loss_scaling:
                grads = [g / self.loss_scale for g in grads]
            norm = tf.linalg.global_norm(grads)
            finite = tf.math.is_finite(norm)
            if cfg.clip_norm:
                grads, _ = tf.clip_by_global_norm(grads, cfg.clip_norm, use_norm=norm)
            return loss, grads, finite, stop

        def update(grads):
            optimizer.apply_reduced(grads, trainable, strategy)

        if replicas == 1:
            # One replica: the optimizer update (elementwise over every weight) is always worth fusing with XLA,
            # also when the forward/backward pass is not compiled (on CPUs, oneDNN beats XLA at the matmuls).
            update = tf.function(update, jit_compile=True)

        def applied(grads):
            update(grads)
            self.global_step.assign_add(1)
            self.nonfinite_in_a_row.assign(0)
            if loss_scaling:
                good = self.good_steps + 1
                grow = good >= LOSS_SCALE_GROWTH_STEPS
                self.loss_scale.assign(tf.where(grow, self.loss_scale * 2.0, self.loss_scale))
                self.good_steps.assign(tf.where(grow, tf.zeros_like(good), good))
            return tf.constant(True)

        def skipped():
            self.nonfinite_in_a_row.assign_add(1)
            self.skipped_steps.assign_add(1)
            if loss_scaling:
                self.loss_scale.assign(tf.maximum(self.loss_scale / 2.0, 1.0))
                self.good_steps.assign(tf.zeros_like(self.good_steps))
            return tf.constant(False)

        @tf.function(reduce_retracing=True)
        def apply_step(batch, stop):
            loss, grads, finite, stop = strategy.run(final_replica, args=(batch, stop))
            # Every replica decided on the same combined gradient; take this worker's first copy.
            finite = strategy.experimental_local_results(finite)[0]
            tf.cond(finite, lambda: applied(grads), skipped)
            self.consumed_batches.assign_add(1)
            return (strategy.experimental_local_results(loss)[0], strategy.experimental_local_results(stop)[0],
                    self.global_step.read_value(), self.nonfinite_in_a_row.read_value())

        @tf.function(reduce_retracing=True)
        def accumulate_step(batch):
            # No collective: the micro-batch's gradient and loss are summed on each replica until the last one.
            strategy.run(accumulate_replica, args=(batch,))
            self.consumed_batches.assign_add(1)

        @tf.function(jit_compile=cfg.use_xla, reduce_retracing=True)
        def forward(batch):
            return model(batch, training=False)

        self._apply_step, self._accumulate_step, self._forward = (one_trace(f, replicas) for f in
                                                                   (apply_step, accumulate_step, forward))

    def _distribute(self, batch, per_worker=False):
        """Split a batch into per-replica slices: a global batch (every worker holds all rows; replica r takes
        the r-th slice) or, with ``per_worker``, this worker's share (its local replicas split it)."""
        n = self.runtime.num_replicas
        if n == 1:
            return tf.nest.map_structure(tf.convert_to_tensor, batch)
        local = n // max(self.runtime.num_workers, 1) if per_worker else n
        first = self.runtime.worker_index * local if per_worker else 0
        rows = [len(next(iter(part.values()))) for part in as_parts(batch)]
        for count in rows:
            if count % local:
                raise ValueError(f"a batch of {count} rows does not split over {local} replicas")

        def value_fn(ctx):
            r = ctx.replica_id_in_sync_group - first
            sliced = tuple({k: tf.convert_to_tensor(v[r * (count // local):(r + 1) * (count // local)])
                            for k, v in part.items()} for part, count in zip(as_parts(batch), rows))
            return sliced if isinstance(batch, tuple) else sliced[0]

        return self.strategy.experimental_distribute_values_from_function(value_fn)

    # ---- loops -----------------------------------------------------------------------------------------
    def fit(self, batches, per_worker=False, rows_per_batch=None, on_save=None):
        """Train until global_step == num_train_steps, consuming ``num_accumulation_steps`` batches a step.

        ``batches``: global batches (each worker holds every row), or with ``per_worker`` this worker's share;
        numpy dicts (prepared ahead on a background thread) or tensors. They must start where the restored data
        position (``consumed_batches``) left off. The device's results are fetched only for a progress line:
        every ``display_loss_steps`` steps, at least every ``progress_seconds``, and at checkpoints; the line
        gives that step's loss. ``on_save(step)`` runs on every worker before each checkpoint (e.g. to save the
        input position). Returns the loss of the last step.

        Preemption: SIGTERM or SIGUSR1 (what Slurm sends before a time limit or preemption) is passed to the other
        workers with the next step's gradient all-reduce; every worker reads that agreement one step later, so all
        finish the same step, save a checkpoint there and raise ``Preempted``. A signal that came before the first
        step (restore, input positioning: see PREEMPTION.hold) stops every worker at the restored step; one that
        comes during a checkpoint or the last one stops every worker once it is complete.

        Several workers: a worker whose step takes BIOBERT_COLLECTIVE_TIMEOUT longer than its longest one (a hung
        peer) stops (CollectiveWatchdog), as does one whose peer dies (TensorFlow's health check); either way
        every worker ends with the one-line WorkerLost error. Checkpoints are not timed: all workers meet at a
        barrier once the chief's is written, however long that takes.
        """
        cfg = self.config
        batches = prefetch(batches) if not isinstance(batches, tf.data.Iterator) else batches
        with PREEMPTION.deferred() as caught, self._lost_contact():
            step = int(self.global_step.numpy())
            if step >= cfg.num_train_steps:
                self.log.info(f"training already complete ({step} of {cfg.num_train_steps} steps)")
                if caught:
                    raise Preempted(step, caught[0], saved=False)
                return None
            self.log.info(f"training from step {step} to {cfg.num_train_steps} "
                          f"(accumulating {cfg.num_accumulation_steps} micro-batch(es) per step; peak learning rate "
                          f"{self.peak_learning_rate:.3g} = {cfg.learning_rate:.3g} x {self.runtime.num_replicas} "
                          f"replica(s))")
            # A signal before the first step: every worker stops where it resumed (its checkpoint is the newest).
            asked = self._agree([len(caught) > 0])[0] if self.runtime.num_workers > 1 else len(caught)
            if asked:
                raise Preempted(step, caught[0] if caught else OTHER_WORKER, saved=False)
            timeout = getattr(self.runtime, "collective_timeout", None)
            watchdog = CollectiveWatchdog(timeout) if timeout and self.runtime.num_workers > 1 else None
            try:
                return self._fit(batches, per_worker, rows_per_batch, on_save, step, caught, watchdog)
            finally:
                if watchdog is not None:
                    watchdog.close()

    def _fit(self, batches, per_worker, rows_per_batch, on_save, step, caught, watchdog):
        cfg = self.config
        stop_values = [self._replica_values(float(flag)) for flag in (0, 1)]
        train_start = time.time()
        timed_from, timed_steps = None, 0      # throughput and ETA leave out the first (tracing) step
        window_rows, window_start, last_report = 0, time.time(), time.time()
        # Decisions (checkpoint, stop, divergence, preemption) use values every worker has at the same step:
        # the previous step's outputs (finished by the time this step is queued, so reading them lets the
        # device run on), and this step's own only where it may be a boundary.
        known = (step, 0.0, 0)                 # (global step, replicas asking to stop, non-finite in a row)
        pending = None                         # the previous step's (global step, stop, non-finite) tensors
        last_loss = None

        def report(shown, done, now):
            """A progress line for step ``shown`` with last_loss, the sentences/s since the last line and the
            time left from ``done`` steps finished (None: the first step, no rate yet); opens a new window."""
            nonlocal window_rows, window_start, last_report
            if done is None:
                self._progress(shown, last_loss, 0.0, now - train_start, None)
            else:
                self._progress(shown, last_loss, window_rows / max(now - window_start, 1e-9), now - train_start,
                               (now - timed_from) / max(done - timed_steps, 1) * (cfg.num_train_steps - done))
            window_rows, window_start, last_report = 0, now, now

        def checkpoint(step):
            """The checkpoint at ``step``; True when some worker has caught a preemption signal by its end."""
            if watchdog is not None:
                watchdog.pause()
            return self._checkpoint(step, on_save, caught)

        while True:
            rows = 0
            for micro in range(cfg.num_accumulation_steps):
                if watchdog is not None:
                    watchdog.pause()           # this worker's own input is no peer's silence
                try:
                    batch = next(batches)
                except StopIteration:
                    raise InputError("training data ran out before num_train_steps") from None
                if watchdog is not None and timed_from is not None:
                    watchdog.beat()            # from here on this worker waits for its peers (and its device)
                rows += self._rows(batch, rows_per_batch)
                dist = self._distribute(batch, per_worker)
                if micro + 1 < cfg.num_accumulation_steps:
                    self._accumulate_step(dist)
                else:
                    loss, stop, global_step, in_a_row = self._apply_step(dist, stop_values[1 if caught else 0])
            window_rows += rows
            if pending is not None:
                known = tuple(kind(value) for kind, value in zip((int, float, int), pending))
            pending = (global_step, stop, in_a_row)
            before, preempt, streak = known
            nxt = before + 1
            boundary = (timed_from is None or preempt > 0 or streak > 0 or nxt >= cfg.num_train_steps
                        or nxt % cfg.display_loss_steps == 0
                        or (cfg.save_checkpoints_steps and nxt % cfg.save_checkpoints_steps == 0))
            now = time.time()
            if not boundary:
                if now - last_report >= cfg.progress_seconds and timed_from is not None:
                    last_loss = float(loss)
                    report(known[0] + 1, known[0], now)
                continue
            # A boundary: this step's results (waits for the device).
            last_loss = float(loss)
            known = (int(global_step), float(stop), int(in_a_row))
            pending = None
            step = known[0]
            if known[2] >= cfg.max_nonfinite_steps:
                raise TrainingDiverged(
                    f"training diverged: {known[2]} steps in a row had non-finite gradients (at step {step}); "
                    f"the last checkpoint in output_dir is intact. Lower --learning_rate, or raise "
                    f"--max_nonfinite_steps to keep trying")
            now = time.time()
            if timed_from is None:
                # The first step includes tracing and compilation; keep it out of the throughput figures.
                timed_from, timed_steps = now, step
                self.log.info(f"first step (tracing{' + XLA compile' if cfg.use_xla else ''}) took "
                              f"{now - train_start:.1f}s")
                report(step, None, now)
            elif step != before and (step % cfg.display_loss_steps == 0 or step >= cfg.num_train_steps
                                     or preempt > 0):
                report(step, step, now)
            if preempt > 0 and step < cfg.num_train_steps:
                # Some worker caught a signal before the previous step: all finish here.
                checkpoint(step)
                raise Preempted(step, caught[0] if caught else OTHER_WORKER)
            if (cfg.save_checkpoints_steps and step != before and step < cfg.num_train_steps
                    and step % cfg.save_checkpoints_steps == 0):
                if checkpoint(step):
                    # A signal during the checkpoint: it is complete everywhere, so all stop here.
                    raise Preempted(step, caught[0] if caught else OTHER_WORKER)
            if step >= cfg.num_train_steps:
                break
        if checkpoint(step):
            raise Preempted(step, caught[0] if caught else OTHER_WORKER)
        total = time.time() - train_start
        self.log.log((), {"train_time_s": total}, text=f"training took {total:.1f}s")
        return last_loss

    def _checkpoint(self, step, on_save, caught=()):
        """``on_save(step)`` on every worker (e.g. its input position), then the chief's checkpoint. With several
        workers all then meet at a barrier (``_agree``, not timed), so that none trains on, or exits on a
        preemption, before the chief's checkpoint is complete and named in the state file, and a worker that could
        not write its part stops them all. Returns whether some worker has caught a preemption signal (``caught``
        non-empty) by then: the same answer on every worker."""
        failure = None
        try:
            if on_save is not None:
                on_save(step)
            self.save()
        except InputError as err:           # a full disk, an unwritable folder
            if self.runtime.num_workers <= 1:
                raise
            failure = err
        if self.runtime.num_workers <= 1:
            return bool(caught)
        failed, stopping = self._agree([failure is not None, len(caught) > 0])
        if not stopping:
            # A signal that came while this worker waited in the barrier is handled only once the barrier returns
            # (Python runs its handlers between bytecodes): one more round, so that it stops every worker here.
            stopping = self._agree([len(caught) > 0])[0]
        if failure is not None:
            raise failure
        if failed:
            raise InputError(f"another worker could not write its part of the checkpoint at step {step} (its log "
                             "says why); this worker stops too. The previous checkpoint is intact",
                             path=self.config.output_dir)
        return stopping > 0

    def _replica_values(self, value):
        """``value`` as a float32 scalar on every replica (a plain tensor with one replica)."""
        if self.runtime.num_replicas == 1:
            return tf.constant(value, tf.float32)
        return self.strategy.experimental_distribute_values_from_function(
            lambda ctx: tf.constant(value, tf.float32))

    @staticmethod
    def _rows(batch, rows_per_batch):
        if rows_per_batch:
            return rows_per_batch
        return sum(int(np.sum(part["valid"])) if "valid" in part else len(part["input_ids"])
                   for part in as_parts(batch))

    def _progress(self, step, loss, throughput, elapsed, remaining):
        total = self.config.num_train_steps
        lr = float(self.schedule(max(int(self.optimizer.iterations.numpy()) - 1, 0)))
        data = {"loss": loss, "learning_rate": lr, "throughput_train": throughput}
        skipped = int(self.skipped_steps.numpy())
        if self.runtime.loss_scaling:
            data["loss_scale"] = float(self.loss_scale.numpy())
        text = (f"step {step}/{total} ({100.0 * step / total:.0f}%) loss {loss:.4f} lr {lr:.3g} "
                f"{throughput:.1f} sentences/s, elapsed {_clock(elapsed)}"
                + (f", left ~{_clock(remaining)}" if remaining is not None else ""))
        if skipped:
            data["skipped_steps"] = skipped
            text += f", {skipped} non-finite step(s) skipped"
        if self.runtime.loss_scaling:
            text += f", loss scale {data['loss_scale']:g}"
        self.log.log(step, data, text=text)
        self.write_summaries(step, data, prefix="train/")

    def predict(self, batches):
        """Run the model on each global batch (cross-replica, no dropout); yields numpy outputs per batch."""
        for batch in batches:
            tensors = {k: tf.convert_to_tensor(v) for k, v in batch.items()}
            outputs = self._forward(tensors)
            yield tf.nest.map_structure(lambda t: t.numpy(), outputs)
