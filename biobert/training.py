"""The one training / evaluation / prediction loop shared by NER, RE and pre-training.

Tasks differ in data and head only. A task hands the Trainer a model-building function, a loss function
``loss_fn(batch, outputs) -> scalar float32 mean loss`` and an iterator of global batches (dicts of numpy
arrays, batch = per-replica batch x replicas; biobert.batching makes them). The Trainer owns: the distribution
strategy scope, mixed precision (policy set by biobert.distribution; dynamic loss scaling under float16), XLA,
gradient accumulation over micro-batches (all-reduce after accumulation), the optimizer and schedule, logging
(dllogger JSON lines + a readable progress line with throughput), checkpoints every ``save_checkpoints_steps``
(keeping the latest) and resuming from output_dir.

Where to read on: biobert.train_step for what one step computes (the compiled functions), biobert.train_loop
for how ``fit`` drives the steps (progress, checkpoints, preemption), biobert.runcontrol for why a run stops
early (preemption signals, lost workers, divergence).
"""
import dataclasses
import math
import os

import numpy as np
import tensorflow as tf

from biobert import checkpoints, modeling, optimization
from biobert.batching import prefetch
from biobert.defaults import TRAINING
from biobert.errors import InputError, Preempted
from biobert.runcontrol import OTHER_WORKER, PREEMPTION, CollectiveWatchdog, stop_on_lost_worker
from biobert.train_loop import TrainingLoop
from biobert.train_step import TrainStep, one_trace


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

    Holds what a run saves and resumes (``state_variables``): the weights, the optimizer and its slots, the step
    counters and loss scale, the dropout seeds and the data position. What one training step computes is
    ``train_step`` (biobert.train_step.TrainStep); ``fit`` drives the steps (biobert.train_loop.TrainingLoop).
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
        self._agreements = {}                 # agree's traced collectives, by the number of values
        self.summary_writer = None
        if runtime.is_chief and config.output_dir:
            self.summary_writer = tf.summary.create_file_writer(os.path.join(config.output_dir, "tensorboard"))
        self.train_step = TrainStep(self)
        self._forward = one_trace(tf.function(self._infer, jit_compile=config.use_xla, reduce_retracing=True),
                                  runtime.num_replicas)

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
                # A checkpoint without the dropout seeds or the data position (OPTIONAL_STATE) still resumes.
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
        total, squares = self.agree([step, step * step])
        if total != workers * step or squares != workers * step * step:
            raise InputError(f"workers resumed at different steps (this worker: step {step} from {what}): every "
                             "worker must see the same output_dir (a shared file system)",
                             path=self.config.output_dir)

    def agree(self, values):
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
        with stop_on_lost_worker(self.runtime.num_workers, self.config.output_dir):
            return [int(v) // local for v in summed(tf.constant([int(v) for v in values], tf.int64)).numpy()]

    def load_weights(self, path, **kwargs):
        return checkpoints.load_weights(self.variables, path, log=self.log.info, **kwargs)

    # ---- training and inference -------------------------------------------------------------------------
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
        with PREEMPTION.deferred() as caught, stop_on_lost_worker(self.runtime.num_workers, cfg.output_dir):
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
            asked = self.agree([len(caught) > 0])[0] if self.runtime.num_workers > 1 else len(caught)
            if asked:
                raise Preempted(step, caught[0] if caught else OTHER_WORKER, saved=False)
            timeout = getattr(self.runtime, "collective_timeout", None)
            watchdog = CollectiveWatchdog(timeout) if timeout and self.runtime.num_workers > 1 else None
            try:
                return TrainingLoop(self, batches, per_worker, rows_per_batch, on_save, caught, watchdog).run(step)
            finally:
                if watchdog is not None:
                    watchdog.close()

    def _infer(self, batch):
        return self.model(batch, training=False)

    def predict(self, batches):
        """Run the model on each global batch (cross-replica, no dropout); yields numpy outputs per batch."""
        for batch in batches:
            tensors = {k: tf.convert_to_tensor(v) for k, v in batch.items()}
            outputs = self._forward(tensors)
            yield tf.nest.map_structure(lambda t: t.numpy(), outputs)
