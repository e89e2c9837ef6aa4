"""What one training step computes: the compiled TensorFlow functions a Trainer runs (``TrainStep``).

One training step, on any number of replicas and workers:
  1. every replica computes the gradient of its share of the global batch (times the loss scale under
     float16), accumulating ``num_accumulation_steps`` micro-batches (``accumulate``, for all but the last);
  2. the gradients are summed over all replicas (one all-reduce per step with allreduce_post_accumulation,
     else one per micro-batch): from here every replica holds the same gradient of the global batch's mean loss;
  3. on that combined gradient, identically everywhere: unscale, global norm, finiteness, clipping by
     global norm (``clip_norm``);
  4. finite: the optimizer updates every copy of the weights and the step counts (global_step, the optimizer's
     iterations and so the schedule advance together); not finite: the step is skipped everywhere, the loss
     scale halves and nothing else changes (``max_nonfinite_steps`` skipped steps in a row stop the run: see
     biobert.train_loop).
Steps 2 to 4 are ``apply``, run with the last micro-batch; the step's loss and the replicas' requests to stop
travel in the same all-reduce as the gradients.
"""
import tensorflow as tf

from biobert.batching import as_parts

LOSS_SCALE_GROWTH_STEPS = 1000      # finite steps in a row before the dynamic loss scale doubles (NVIDIA's TF1 BERT:
                                    # ExponentialUpdateLossScaleManager(incr_every_n_steps=1000))


def relaxed_spec(structure):
    """TensorSpecs for the tensors of ``structure`` with every dimension unknown."""
    return tf.nest.map_structure(lambda t: tf.TensorSpec([None] * t.shape.rank, t.dtype), structure)


def one_trace(function, replicas):
    """``function`` (a tf.function taking batches) traced once for every batch shape: before its first call it is
    traced with every dimension unknown, and calls with any concrete shape then run that graph. (Left to itself,
    with reduce_retracing, it traces a batch's concrete shapes, then again while generalising them: several
    traces of the whole training step at the start of a run whose batches differ in length.) Under XLA the
    compiled clusters still specialise per shape when they run. With several replicas the batches are distributed
    values, traced as they come."""
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


class TrainStep:
    """The compiled step of a Trainer: ``accumulate(batch)`` for a micro-batch before the last of a step,
    ``apply(batch, stop)`` for the last one. Both take a batch distributed over the replicas (a dict of tensors,
    or a tuple of equal-row parts whose loss is the mean of the parts' losses). Works on the Trainer's model,
    optimizer, accumulators and counters."""

    def __init__(self, trainer):
        cfg, runtime = trainer.config, trainer.runtime
        self.strategy, self.model, self.loss_fn = trainer.strategy, trainer.model, trainer.loss_fn
        self.optimizer, self.trainable = trainer.optimizer, trainer.trainable
        self.replicas, self.loss_scaling, self.clip_norm = runtime.num_replicas, runtime.loss_scaling, cfg.clip_norm
        # Each replica's loss is a mean over its rows; scaled so that the SUM over replicas and micro-batches
        # is the gradient of the global batch's mean loss.
        self.scale = 1.0 / (self.replicas * cfg.num_accumulation_steps)
        self.accumulators, self.loss_accumulator = trainer.accumulators, trainer.loss_accumulator
        self.reduce_each_micro_batch = self.accumulators is not None and not cfg.allreduce_post_accumulation
        self.global_step, self.consumed_batches = trainer.global_step, trainer.consumed_batches
        self.nonfinite_in_a_row, self.skipped_steps = trainer.nonfinite_in_a_row, trainer.skipped_steps
        self.loss_scale, self.good_steps = trainer.loss_scale, trainer.good_steps

        self.gradients = tf.function(self._gradients, jit_compile=cfg.use_xla, reduce_retracing=True)
        self.update = self._update
        if self.replicas == 1:
            # One replica: the optimizer update (elementwise over every weight) is always worth fusing with XLA,
            # also when the forward/backward pass is not compiled.
            self.update = tf.function(self._update, jit_compile=True)
        self.accumulate = one_trace(tf.function(self._accumulate, reduce_retracing=True), self.replicas)
        self.apply = one_trace(tf.function(self._apply, reduce_retracing=True), self.replicas)

    # ---- the two step functions (cross-replica) ------------------------------------------------------------
    def _accumulate(self, batch):
        """A micro-batch before the last: its gradient and loss are added to each replica's accumulators."""
        self.strategy.run(self._accumulate_replica, args=(batch,))
        self.consumed_batches.assign_add(1)

    def _apply(self, batch, stop):
        """The last micro-batch and the update. ``stop``: 1.0 on every replica of a worker that caught a preemption
        signal. Returns the step's mean loss, how many replicas asked to stop, global_step and the non-finite steps
        in a row (this worker's copies)."""
        loss, grads, finite, stop = self.strategy.run(self._final_replica, args=(batch, stop))
        # Every replica decided on the same combined gradient; take this worker's first copy.
        finite = self.strategy.experimental_local_results(finite)[0]
        tf.cond(finite, lambda: self._applied(grads), self._skipped)
        self.consumed_batches.assign_add(1)
        return (self.strategy.experimental_local_results(loss)[0], self.strategy.experimental_local_results(stop)[0],
                self.global_step.read_value(), self.nonfinite_in_a_row.read_value())

    # ---- on each replica ---------------------------------------------------------------------------------------
    def _gradients(self, batch):
        """Forward and backward pass of this replica's share of a micro-batch: (its mean loss, dense gradients of
        the loss x ``scale`` (x the loss scale))."""
        parts = as_parts(batch)
        with tf.GradientTape() as tape:
            # A tuple holds equal-row parts of one batch: its loss is the mean of the parts' losses.
            loss = tf.add_n([tf.cast(self.loss_fn(part, self.model(part, training=True)), tf.float32)
                             for part in parts]) / len(parts)
            objective = loss * self.scale
            if self.loss_scaling:
                objective = objective * self.loss_scale
        grads = tape.gradient(objective, self.trainable)
        # Embedding lookups give IndexedSlices; the all-reduce, accumulators and optimizers work on dense ones.
        return loss, [tf.convert_to_tensor(g) for g in grads]

    def _accumulate_replica(self, batch):
        loss, grads = self.gradients(batch)
        if self.reduce_each_micro_batch:
            grads = self._all_reduce(grads)
        for a, g in zip(self.accumulators, grads):
            a.assign_add(g)
        self.loss_accumulator.assign_add(loss)

    def _final_replica(self, batch, stop):
        """The last micro-batch of a step: the step's combined gradient, unscaled and clipped, whether it is finite,
        how many replicas asked to stop and the step's mean loss over every micro-batch and replica. The stop flags
        and the loss are summed with the gradients, in the step's one all-reduce, so every replica gets the same
        values without a collective of their own."""
        loss, grads = self.gradients(batch)
        if self.accumulators is not None:
            loss = self._take_accumulated_loss(loss)
            if not self.reduce_each_micro_batch:
                grads = self._plus_accumulated(grads)
        # (identity: placed on this replica's device)
        reduced = self._all_reduce(grads + [tf.identity(stop), loss * self.scale])
        grads, stop, loss = reduced[:-2], reduced[-2], reduced[-1]
        if self.accumulators is not None:
            if self.reduce_each_micro_batch:
                grads = self._plus_accumulated(grads)
            for a in self.accumulators:
                a.assign(tf.zeros_like(a))
        grads, finite = self._unscale_and_clip(grads)
        return loss, grads, finite, stop

    def _all_reduce(self, values):
        """The sum over every replica (of every worker)."""
        if self.replicas == 1:
            return values
        return tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, values)

    def _take_accumulated_loss(self, loss):
        """``loss`` plus the earlier micro-batches' losses; clears their sum for the next step."""
        loss = self.loss_accumulator.read_value() + loss
        self.loss_accumulator.assign(tf.zeros_like(self.loss_accumulator))
        return loss

    def _plus_accumulated(self, grads):
        return [a.read_value() + g for a, g in zip(self.accumulators, grads)]

    def _unscale_and_clip(self, grads):
        """(gradients unscaled and clipped to ``clip_norm``, whether their global norm is finite)."""
        if self.loss_scaling:
            grads = [g / self.loss_scale for g in grads]
        norm = tf.linalg.global_norm(grads)
        finite = tf.math.is_finite(norm)
        if self.clip_norm:
            grads, _ = tf.clip_by_global_norm(grads, self.clip_norm, use_norm=norm)
        return grads, finite

    # ---- the update, or the skip (cross-replica) ---------------------------------------------------------------
    def _update(self, grads):
        self.optimizer.apply_reduced(grads, self.trainable, self.strategy)

    def _applied(self, grads):
        """A finite step: update the weights, count the step; under loss scaling, double the scale after
        LOSS_SCALE_GROWTH_STEPS finite steps in a row."""
        self.update(grads)
        self.global_step.assign_add(1)
        self.nonfinite_in_a_row.assign(0)
        if self.loss_scaling:
            good = self.good_steps + 1
            grow = good >= LOSS_SCALE_GROWTH_STEPS
            self.loss_scale.assign(tf.where(grow, self.loss_scale * 2.0, self.loss_scale))
            self.good_steps.assign(tf.where(grow, tf.zeros_like(good), good))
        return tf.constant(True)

    def _skipped(self):
        """A non-finite step: nothing changes but the counts of skipped steps; under loss scaling the scale
        halves (not below 1)."""
        self.nonfinite_in_a_row.assign_add(1)
        self.skipped_steps.assign_add(1)
        if self.loss_scaling:
            self.loss_scale.assign(tf.maximum(self.loss_scale / 2.0, 1.0))
            self.good_steps.assign(tf.zeros_like(self.good_steps))
        return tf.constant(False)
