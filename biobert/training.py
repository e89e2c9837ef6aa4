"""The one training / evaluation / prediction loop shared by NER, RE and pre-training.

Tasks differ in data and head only. A task hands the Trainer a model-building function, a loss function
``loss_fn(batch, outputs) -> scalar float32 mean loss`` and an iterator of global batches (dicts of numpy
arrays, batch = per-replica batch x replicas). The Trainer owns: the distribution strategy scope, mixed
precision (policy set by biobert.distribution; dynamic loss scaling under float16), XLA (the forward and
backward pass is ``jit_compile``d), gradient accumulation over micro-batches (all-reduce after accumulation),
the optimizer and schedule, logging (dllogger JSON lines + a readable progress line with throughput),
checkpoints every ``save_checkpoints_steps`` (keeping the latest) and resuming from output_dir.
"""
import dataclasses
import math
import time

import numpy as np
import tensorflow as tf

from biobert import checkpoints, modeling, optimization
from biobert.errors import InputError


# ----------------------------------------------------------------------------------------------------------
# Batches of variable-length examples (fine-tuning)

SEQUENCE_KEYS = ("input_ids", "segment_ids", "label_ids", "first_subword", "loss_weights")


def pad_batch(examples, length, batch_size=None):
    """Stack feature dicts into a batch padded to ``length`` (and to ``batch_size`` rows with empty rows).

    1-D array features are zero-padded on the right; scalars are stacked. Adds ``input_mask`` (1 on real
    tokens) and ``valid`` (1 for real rows, 0 for padding rows).
    """
    rows = len(examples)
    total = batch_size or rows
    batch = {}
    for key, value in examples[0].items():
        if isinstance(value, np.ndarray) and value.ndim == 1:
            out = np.zeros((total, length), dtype=np.int32 if value.dtype.kind in "iub" else np.float32)
            for i, ex in enumerate(examples):
                out[i, : len(ex[key])] = ex[key]
            batch[key] = out
        elif np.isscalar(value) or (isinstance(value, np.ndarray) and value.ndim == 0):
            out = np.zeros((total,), dtype=np.int32 if np.asarray(value).dtype.kind in "iub" else np.float32)
            out[:rows] = [ex[key] for ex in examples]
            batch[key] = out
    mask = np.zeros((total, length), dtype=np.int32)
    for i, ex in enumerate(examples):
        mask[i, : len(ex["input_ids"])] = 1
    batch["input_mask"] = mask
    batch["valid"] = (np.arange(total) < rows).astype(np.float32)
    return batch


def _padded_length(longest, multiple, max_length):
    return int(min(max_length, max(multiple, math.ceil(longest / multiple) * multiple)))


SORT_WINDOW = 64      # batches whose rows training_batches sorts by length together (1: a plain shuffle)
PART_ROWS = 8         # fewest rows in one length-sorted part of a plainly shuffled batch (see batch_parts)


def batch_parts(per_replica_batch, most=4, min_rows=PART_ROWS):
    """How many length-sorted parts to compute a plainly shuffled batch in: the largest k <= ``most`` that
    divides the per-replica batch into parts of at least ``min_rows`` rows (1: the batch in one piece)."""
    for k in range(most, 1, -1):
        if per_replica_batch % k == 0 and per_replica_batch // k >= min_rows:
            return k
    return 1


def training_batches(features, batch_size, max_length, seed, start_step=0, pad_multiple=32,
                     sort_window=SORT_WINDOW, parts=1):
    """Endless training batches: each epoch a seeded shuffle, then length-sorted within windows of
    ``sort_window`` batches (little padding), batches in shuffled order; incomplete last batch dropped.

    With ``parts`` > 1 each batch is yielded as a tuple of ``parts`` micro-batches of batch_size / parts rows:
    the batch's rows sorted by length and cut in order, each part padded to its own longest row. The Trainer
    computes a tuple in one step as the mean of the parts' mean losses (equal rows per part, so the batch's
    loss and update) with less padding; which rows train together is unchanged. (``flat_parts`` turns the
    tuples into consecutive micro-batches for gradient accumulation instead.)

    Deterministic for a given seed: ``start_step`` (in yielded batches) skips already-trained batches
    cheaply (for resuming). Yields dicts from ``pad_batch``, or tuples of them.
    """
    steps_per_epoch = len(features) // batch_size
    if steps_per_epoch == 0:
        raise InputError(f"fewer training examples ({len(features)}) than one batch ({batch_size})")
    if batch_size % parts:
        raise ValueError(f"a batch of {batch_size} rows does not cut into {parts} equal parts")
    lengths = np.array([len(f["input_ids"]) for f in features])
    epoch, offset = divmod(start_step, steps_per_epoch)
    while True:
        rng = np.random.default_rng([seed, epoch])
        order = rng.permutation(len(features))[: steps_per_epoch * batch_size]
        window = batch_size * sort_window
        groups = []
        for start in range(0, len(order), window):
            chunk = order[start:start + window]
            chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
            groups += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
        for b in rng.permutation(len(groups))[offset:]:
            yield assemble_batch(features, groups[b], lengths, max_length, pad_multiple, parts)
        epoch, offset = epoch + 1, 0


def assemble_batch(features, idx, lengths, max_length, pad_multiple=32, parts=1):
    """One training batch of the rows ``idx`` as ``training_batches`` yields it: padded to its longest row (rounded
    up to ``pad_multiple``), or with ``parts`` > 1 a tuple of that many length-sorted parts, each padded to its own.
    ``lengths``: every feature's token count."""
    if parts > 1:
        idx = idx[np.argsort(lengths[idx], kind="stable")]
    padded = tuple(pad_batch([features[i] for i in part], _padded_length(lengths[part].max(), pad_multiple, max_length))
                   for part in np.split(idx, parts))
    return padded if parts > 1 else padded[0]


def as_parts(batch):
    """The parts of a batch from ``training_batches``: the tuple itself, or (batch,) for a batch in one piece."""
    return batch if isinstance(batch, tuple) else (batch,)


def flat_parts(batches):
    """The parts of each tuple from ``training_batches(parts=k)`` as k consecutive micro-batches (for a Trainer
    accumulating k micro-batches a step: the same update, one compiled shape per part under XLA)."""
    for batch in batches:
        yield from as_parts(batch)


def inference_batches(features, batch_size, max_length, pad_multiple=32):
    """Batches in length order for prediction; yields (indices of the examples, padded batch of batch_size rows)."""
    lengths = np.array([len(f["input_ids"]) for f in features])
    order = np.argsort(lengths, kind="stable")
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        length = _padded_length(lengths[idx].max(), pad_multiple, max_length)
        yield idx, pad_batch([features[i] for i in idx], length, batch_size=batch_size)


# ----------------------------------------------------------------------------------------------------------
# The trainer

@dataclasses.dataclass
class TrainConfig:
    output_dir: str
    learning_rate: float
    num_train_steps: int
    num_warmup_steps: int = 0
    optimizer_type: str = "adam"
    weight_decay_rate: float = 0.01
    clip_norm: float = 1.0
    poly_power: float = 1.0
    decay_from_warmup: bool = False      # True: the decay starts at the peak when warm-up ends (fine-tuning)
    num_accumulation_steps: int = 1
    allreduce_post_accumulation: bool = True
    save_checkpoints_steps: int = 1000
    display_loss_steps: int = 1
    init_loss_scale: float = 2.0 ** 15
    use_xla: bool = False
    keep_checkpoints: int = 1


class Trainer:
    """Builds ``model_fn()`` inside the strategy scope, trains it, checkpoints it and runs inference."""

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
            lr = config.learning_rate * runtime.num_workers
            self.schedule = optimization.WarmupPolynomialDecay(
                lr, config.num_train_steps, config.num_warmup_steps, power=config.poly_power,
                decay_from_warmup=config.decay_from_warmup)
            self.optimizer, self.inner_optimizer = optimization.create_optimizer(
                config.optimizer_type, self.schedule, config.weight_decay_rate, config.clip_norm,
                loss_scale=config.init_loss_scale if runtime.loss_scaling else None)
            self.inner_optimizer.set_variable_names(self.variables)
            self.trainable = list(self.model.trainable_variables)
            self.optimizer.build(self.trainable)
            self.global_step = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step")
            self.accumulators = None
            if config.num_accumulation_steps > 1:
                self.accumulators = [
                    tf.Variable(tf.zeros(v.shape, v.dtype), trainable=False,
                                synchronization=tf.VariableSynchronization.ON_READ,
                                aggregation=tf.VariableAggregation.SUM) for v in self.trainable]
        self._build_functions()

    # ---- state ------------------------------------------------------------------------------------------
    def state_variables(self):
        """Everything a resumed run needs, by name: weights, optimizer slots, step, loss scale, dropout seeds."""
        state = dict(self.variables)
        state.update(self.dropout_states)
        for name, var in self.variables.items():
            if var.trainable:
                for slot, slot_var in self.inner_optimizer.slots(var).items():
                    state[f"{name}/{slot}"] = slot_var
        state["global_step"] = self.global_step
        state["optimizer/iterations"] = self.inner_optimizer.iterations
        if self.optimizer is not self.inner_optimizer:
            state["optimizer/loss_scale"] = self.optimizer.dynamic_scale
            state["optimizer/loss_scale_good_steps"] = self.optimizer.step_counter
        return state

    def save(self):
        step = int(self.global_step.numpy())
        if not self.runtime.is_chief:
            return None
        path = checkpoints.save_checkpoint(self.config.output_dir, step, self.state_variables(),
                                           keep=self.config.keep_checkpoints)
        self.log.info(f"saved checkpoint {path}")
        return path

    def restore_latest(self):
        """Resume from the newest checkpoint in output_dir, if any; returns the restored global step."""
        prefix = checkpoints.latest_checkpoint(self.config.output_dir)
        if prefix is None:
            return 0
        # Checkpoints written before the dropout seeds were saved still resume (with fresh dropout masks).
        missing = checkpoints.restore_state(prefix, self.state_variables(), optional=tuple(self.dropout_states))
        if missing:
            self.log.info(f"{prefix} holds no dropout seed state: resumed with new dropout masks")
        step = int(self.global_step.numpy())
        self.log.info(f"resuming from {prefix} at step {step}")
        return step

    def load_weights(self, path, **kwargs):
        return checkpoints.load_weights(self.variables, path, log=self.log.info, **kwargs)

    # ---- compiled steps ---------------------------------------------------------------------------------
    def _build_functions(self):
        model, loss_fn, optimizer = self.model, self.loss_fn, self.optimizer
        trainable = self.trainable
        accum = self.config.num_accumulation_steps
        scale = 1.0 / (self.runtime.num_replicas * accum)
        scaled_loss = self.runtime.loss_scaling

        @tf.function(jit_compile=self.config.use_xla, reduce_retracing=True)
        def gradients(batch):
            parts = as_parts(batch)
            with tf.GradientTape() as tape:
                # A tuple holds equal-row parts of one batch: its loss is the mean of the parts' losses.
                loss = tf.add_n([loss_fn(part, model(part, training=True)) for part in parts]) / len(parts)
                objective = loss * scale
                if scaled_loss:
                    objective = optimizer.scale_loss(objective)
            grads = tape.gradient(objective, trainable)
            # Embedding lookups give IndexedSlices; the optimizers and accumulators work on dense tensors.
            return loss, [tf.convert_to_tensor(g) for g in grads]

        def update(grads):
            optimizer.apply_gradients(zip(grads, trainable))

        if self.runtime.num_replicas == 1:
            # One replica: the optimizer update (elementwise over every weight) is always worth fusing with XLA,
            # also when the forward/backward pass is not compiled (on CPUs, oneDNN beats XLA at the matmuls).
            update = tf.function(update, jit_compile=True)

        def apply_replica(batch):
            loss, grads = gradients(batch)
            if self.accumulators is not None:
                if not self.config.allreduce_post_accumulation:
                    ctx = tf.distribute.get_replica_context()
                    grads = ctx.all_reduce(tf.distribute.ReduceOp.SUM, grads)
                    grads = [g / self.runtime.num_replicas for g in grads]
                grads = [a.read_value() + g for a, g in zip(self.accumulators, grads)]
                for a in self.accumulators:
                    a.assign(tf.zeros_like(a))
            update(grads)
            return loss

        def accumulate_replica(batch):
            loss, grads = gradients(batch)
            if not self.config.allreduce_post_accumulation:
                ctx = tf.distribute.get_replica_context()
                grads = ctx.all_reduce(tf.distribute.ReduceOp.SUM, grads)
                grads = [g / self.runtime.num_replicas for g in grads]
            for a, g in zip(self.accumulators, grads):
                a.assign_add(g)
            return loss

        @tf.function(reduce_retracing=True)
        def apply_step(batch):
            loss = self.strategy.run(apply_replica, args=(batch,))
            self.global_step.assign_add(1)
            return self.strategy.reduce(tf.distribute.ReduceOp.MEAN, loss, axis=None)

        @tf.function(reduce_retracing=True)
        def accumulate_step(batch):
            loss = self.strategy.run(accumulate_replica, args=(batch,))
            return self.strategy.reduce(tf.distribute.ReduceOp.MEAN, loss, axis=None)

        @tf.function(jit_compile=self.config.use_xla, reduce_retracing=True)
        def forward(batch):
            return model(batch, training=False)

        self._apply_step, self._accumulate_step, self._forward = apply_step, accumulate_step, forward

    def _distribute(self, batch):
        """Split a global numpy batch into per-replica slices (each worker builds only its own replicas')."""
        n = self.runtime.num_replicas
        if n == 1:
            return tf.nest.map_structure(tf.convert_to_tensor, batch)
        rows = [len(next(iter(part.values()))) for part in as_parts(batch)]
        for count in rows:
            if count % n:
                raise ValueError(f"global batch of {count} rows does not split over {n} replicas")

        def value_fn(ctx):
            r = ctx.replica_id_in_sync_group
            sliced = tuple({k: tf.convert_to_tensor(v[r * (count // n):(r + 1) * (count // n)])
                            for k, v in part.items()} for part, count in zip(as_parts(batch), rows))
            return sliced if isinstance(batch, tuple) else sliced[0]

        return self.strategy.experimental_distribute_values_from_function(value_fn)

    # ---- loops -----------------------------------------------------------------------------------------
    def fit(self, batches, rows_per_batch=None):
        """Train until global_step == num_train_steps, consuming ``num_accumulation_steps`` batches a step.

        ``batches`` must start where the restored step left off (the caller skips consumed batches).
        Logs the loss of every ``display_loss_steps``-th step (that step's batch, not a window mean); returns the
        loss of the last step.
        """
        cfg = self.config
        step = int(self.global_step.numpy())
        if step >= cfg.num_train_steps:
            self.log.info(f"training already complete ({step} of {cfg.num_train_steps} steps)")
            return None
        self.log.info(f"training from step {step} to {cfg.num_train_steps} "
                      f"(accumulating {cfg.num_accumulation_steps} micro-batch(es) per step)")
        window_rows, window_start = 0, time.time()
        first_step_done = False
        last_loss = None
        train_start = time.time()
        while step < cfg.num_train_steps:
            rows = 0
            loss_sum = 0.0
            for micro in range(cfg.num_accumulation_steps):
                try:
                    batch = next(batches)
                except StopIteration:
                    raise InputError("training data ran out before num_train_steps") from None
                rows += sum(int(part["valid"].sum()) if "valid" in part else len(part["input_ids"])
                            for part in as_parts(batch))
                dist = self._distribute(batch)
                if micro + 1 < cfg.num_accumulation_steps:
                    loss_sum += float(self._accumulate_step(dist))
                else:
                    loss_sum += float(self._apply_step(dist))
            loss = loss_sum / cfg.num_accumulation_steps
            if not math.isfinite(loss) and not self.runtime.loss_scaling:
                raise FloatingPointError(f"loss became {loss} at step {step + 1}")
            step += 1
            if not first_step_done:
                # The first step includes tracing and compilation; keep it out of the throughput figures.
                first_step_done = True
                self.log.info(f"first step (tracing{' + XLA compile' if cfg.use_xla else ''}) took "
                              f"{time.time() - train_start:.1f}s")
                window_start = time.time()
            else:
                window_rows += rows
            last_loss = loss
            if step % cfg.display_loss_steps == 0 or step == cfg.num_train_steps:
                elapsed = time.time() - window_start
                throughput = window_rows / elapsed if elapsed > 0 and window_rows else 0.0
                lr = float(self.schedule(self.inner_optimizer.iterations - 1))
                data = {"loss": loss, "learning_rate": lr, "throughput_train": throughput}
                if self.runtime.loss_scaling:
                    data["loss_scale"] = float(self.optimizer.dynamic_scale.numpy())
                self.log.log(step, data, text=f"step {step}/{cfg.num_train_steps} loss {loss:.4f} lr {lr:.3g} "
                                              f"{throughput:.1f} sentences/s")
                window_rows, window_start = 0, time.time()
            if cfg.save_checkpoints_steps and step % cfg.save_checkpoints_steps == 0 \
                    and step < cfg.num_train_steps:
                self.save()
        self.save()
        total = time.time() - train_start
        self.log.log((), {"train_time_s": total}, text=f"training took {total:.1f}s")
        return last_loss

    def predict(self, batches):
        """Run the model on each global batch (cross-replica, no dropout); yields numpy outputs per batch."""
        for batch in batches:
            tensors = {k: tf.convert_to_tensor(v) for k, v in batch.items()}
            outputs = self._forward(tensors)
            yield tf.nest.map_structure(lambda t: t.numpy(), outputs)
