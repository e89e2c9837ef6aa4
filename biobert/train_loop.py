"""The Python side of ``Trainer.fit``: feeds the compiled step (biobert.train_step) its batches and decides when
to print progress, save a checkpoint, stop on divergence or preemption, and finish.

Those decisions must be the same on every worker, so they are made on values every worker holds at the same
step: the step's outcome (global step, replicas asking to stop, non-finite steps in a row), which every replica
computes alike from the step's one all-reduce. Reading a step's outcome waits for the device, so the loop reads
the previous step's (finished by the time this step is queued: the device runs on) and reads this step's own
only at a boundary, a step that may need a progress line, a checkpoint or a stop.
"""
import collections
import time

import numpy as np
import tensorflow as tf

from biobert.batching import as_parts
from biobert.errors import InputError, Preempted
from biobert.runcontrol import OTHER_WORKER, TrainingDiverged

Outcome = collections.namedtuple("Outcome", "step stop nonfinite")   # global step, replicas asking to stop,
                                                                     # non-finite steps in a row


class Outcomes:
    """The outcomes of the steps queued so far: ``known``, the newest one read, and ``pending``, the tensors of the
    step queued last (None once read)."""

    def __init__(self, step):
        self.known = Outcome(step, 0.0, 0)
        self.pending = None

    def queued(self, tensors):
        """Record the outcome tensors of the step just queued; returns the newest outcome read, which becomes the
        step before's once there is one."""
        if self.pending is not None:
            self.known = self._read(self.pending)
        self.pending = tensors
        return self.known

    def settle(self):
        """The outcome of the step queued last (waits for the device)."""
        self.known, self.pending = self._read(self.pending), None
        return self.known

    @staticmethod
    def _read(tensors):
        return Outcome(*(kind(value) for kind, value in zip((int, float, int), tensors)))


class Meter:
    """The timing of the progress lines: sentences/s since the previous line and the time left, both counted from
    the end of the first step (which includes tracing and compilation)."""

    def __init__(self, total_steps):
        self.total_steps = total_steps
        self.start = time.time()
        self.timed_from, self.timed_steps = None, 0
        self.rows, self.window_start, self.last_line = 0, time.time(), time.time()

    @property
    def started(self):
        """Whether the first step is done (and timed)."""
        return self.timed_from is not None

    def first_step_done(self, now, step):
        self.timed_from, self.timed_steps = now, step

    def line(self, now, done):
        """(sentences/s, elapsed, time left) for a line at ``now`` after ``done`` steps (None: the first step, no
        rate yet); opens a new window."""
        if done is None:
            figures = (0.0, now - self.start, None)
        else:
            figures = (self.rows / max(now - self.window_start, 1e-9), now - self.start,
                       (now - self.timed_from) / max(done - self.timed_steps, 1) * (self.total_steps - done))
        self.rows, self.window_start, self.last_line = 0, now, now
        return figures


def _clock(seconds):
    seconds = int(max(seconds, 0))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class TrainingLoop:
    """One call of ``Trainer.fit`` from its first step: ``run(step)``. ``caught``: the preemption signals caught
    so far (PREEMPTION.deferred); ``watchdog``: the CollectiveWatchdog of a multi-worker run, or None."""

    def __init__(self, trainer, batches, per_worker, rows_per_batch, on_save, caught, watchdog):
        self.trainer, self.config, self.runtime, self.log = trainer, trainer.config, trainer.runtime, trainer.log
        self.batches, self.per_worker, self.rows_per_batch = batches, per_worker, rows_per_batch
        self.on_save, self.caught, self.watchdog = on_save, caught, watchdog
        self.stop_values = [self._replica_values(float(flag)) for flag in (0, 1)]
        self.meter = Meter(self.config.num_train_steps)
        self.last_loss = None

    def run(self, step):
        """Train from ``step`` to num_train_steps, checkpoint, and return the last step's loss."""
        cfg = self.config
        outcomes = Outcomes(step)
        while True:
            loss, tensors = self._queue_step()
            before = outcomes.queued(tensors)       # the previous step's outcome: reading it lets the device run on
            if not self._is_boundary(before):
                self._progress_if_due(before, loss)
                continue
            # A boundary: this step's own results (waits for the device).
            self.last_loss = float(loss)
            outcome = outcomes.settle()
            step = outcome.step
            self._check_finite(outcome)
            self._progress_at_boundary(step, before)
            if before.stop > 0 and step < cfg.num_train_steps:
                # Some worker caught a signal before the previous step: all finish here.
                self._checkpoint(step)
                raise self._preempted(step)
            if self._checkpoint_due(step, before) and self._checkpoint(step):
                # A signal during the checkpoint: it is complete everywhere, so all stop here.
                raise self._preempted(step)
            if step >= cfg.num_train_steps:
                break
        if self._checkpoint(step):
            raise self._preempted(step)
        total = time.time() - self.meter.start
        self.log.log((), {"train_time_s": total}, text=f"training took {total:.1f}s")
        return self.last_loss

    # ---- one step ----------------------------------------------------------------------------------------------
    def _queue_step(self):
        """Queue one step's micro-batches on the device; returns (its loss, its outcome tensors), not yet read."""
        train_step, micro_batches = self.trainer.train_step, self.config.num_accumulation_steps
        for micro in range(micro_batches):
            batch = self._next_batch()
            self.meter.rows += self._rows(batch)
            dist = self._distribute(batch)
            if micro + 1 < micro_batches:
                train_step.accumulate(dist)
            else:
                loss, stop, global_step, in_a_row = train_step.apply(dist, self.stop_values[1 if self.caught else 0])
        return loss, (global_step, stop, in_a_row)

    def _next_batch(self):
        if self.watchdog is not None:
            self.watchdog.pause()           # this worker's own input is no peer's silence
        try:
            batch = next(self.batches)
        except StopIteration:
            raise InputError("training data ran out before num_train_steps") from None
        if self.watchdog is not None and self.meter.started:
            self.watchdog.beat()            # from here on this worker waits for its peers (and its device)
        return batch

    def _rows(self, batch):
        if self.rows_per_batch:
            return self.rows_per_batch
        return sum(int(np.sum(part["valid"])) if "valid" in part else len(part["input_ids"])
                   for part in as_parts(batch))

    def _distribute(self, batch):
        """Split a batch into per-replica slices: a global batch (every worker holds all rows; replica r takes
        the r-th slice) or, with ``per_worker``, this worker's share (its local replicas split it)."""
        n = self.runtime.num_replicas
        if n == 1:
            return tf.nest.map_structure(tf.convert_to_tensor, batch)
        local = n // max(self.runtime.num_workers, 1) if self.per_worker else n
        first = self.runtime.worker_index * local if self.per_worker else 0
        rows = [len(next(iter(part.values()))) for part in as_parts(batch)]
        for count in rows:
            if count % local:
                raise ValueError(f"a batch of {count} rows does not split over {local} replicas")

        def value_fn(ctx):
            r = ctx.replica_id_in_sync_group - first
            sliced = tuple({k: tf.convert_to_tensor(v[r * (count // local):(r + 1) * (count // local)])
                            for k, v in part.items()} for part, count in zip(as_parts(batch), rows))
            return sliced if isinstance(batch, tuple) else sliced[0]

        return self.trainer.strategy.experimental_distribute_values_from_function(value_fn)

    def _replica_values(self, value):
        """``value`` as a float32 scalar on every replica (a plain tensor with one replica)."""
        if self.runtime.num_replicas == 1:
            return tf.constant(value, tf.float32)
        return self.trainer.strategy.experimental_distribute_values_from_function(
            lambda ctx: tf.constant(value, tf.float32))

    # ---- decisions ---------------------------------------------------------------------------------------------
    def _is_boundary(self, before):
        """Whether the step after ``before`` (the outcome read last) must be read at once: the first step, a step
        after a stop request or a non-finite step, the last step, and steps due a progress line or a checkpoint."""
        cfg, nxt = self.config, before.step + 1
        return (not self.meter.started or before.stop > 0 or before.nonfinite > 0 or nxt >= cfg.num_train_steps
                or nxt % cfg.display_loss_steps == 0
                or (cfg.save_checkpoints_steps and nxt % cfg.save_checkpoints_steps == 0))

    def _check_finite(self, outcome):
        if outcome.nonfinite >= self.config.max_nonfinite_steps:
            raise TrainingDiverged(
                f"training diverged: {outcome.nonfinite} steps in a row had non-finite gradients (at step "
                f"{outcome.step}); the last checkpoint in output_dir is intact. Lower --learning_rate, or raise "
                f"--max_nonfinite_steps to keep trying")

    def _checkpoint_due(self, step, before):
        every = self.config.save_checkpoints_steps
        return every and step != before.step and step < self.config.num_train_steps and step % every == 0

    def _preempted(self, step):
        return Preempted(step, self.caught[0] if self.caught else OTHER_WORKER)

    def _checkpoint(self, step):
        """``on_save(step)`` on every worker (e.g. its input position), then the chief's checkpoint. With several
        workers all then meet at a barrier (``Trainer.agree``, not timed), so that none trains on, or exits on a
        preemption, before the chief's checkpoint is complete and named in the state file, and a worker that could
        not write its part stops them all. Returns whether some worker has caught a preemption signal by then: the
        same answer on every worker."""
        if self.watchdog is not None:
            self.watchdog.pause()
        failure = None
        try:
            if self.on_save is not None:
                self.on_save(step)
            self.trainer.save()
        except InputError as err:           # a full disk, an unwritable folder
            if self.runtime.num_workers <= 1:
                raise
            failure = err
        if self.runtime.num_workers <= 1:
            return bool(self.caught)
        failed, stopping = self.trainer.agree([failure is not None, len(self.caught) > 0])
        if not stopping:
            # A signal that came while this worker waited in the barrier is handled only once the barrier returns
            # (Python runs its handlers between bytecodes): one more round, so that it stops every worker here.
            stopping = self.trainer.agree([len(self.caught) > 0])[0]
        if failure is not None:
            raise failure
        if failed:
            raise InputError(f"another worker could not write its part of the checkpoint at step {step} (its log "
                             "says why); this worker stops too. The previous checkpoint is intact",
                             path=self.config.output_dir)
        return stopping > 0

    # ---- progress lines ----------------------------------------------------------------------------------------
    def _progress_if_due(self, before, loss):
        """Between boundaries, a line at least every ``progress_seconds`` (for the step being queued, with its
        loss)."""
        now = time.time()
        if now - self.meter.last_line >= self.config.progress_seconds and self.meter.started:
            self.last_loss = float(loss)
            self._progress(before.step + 1, before.step, now)

    def _progress_at_boundary(self, step, before):
        """The first step's timing and line, and a line every ``display_loss_steps``, at the last step and where
        the run stops for a preemption."""
        now = time.time()
        if not self.meter.started:
            # The first step includes tracing and compilation; keep it out of the throughput figures.
            self.meter.first_step_done(now, step)
            self.log.info(f"first step (tracing{' + XLA compile' if self.config.use_xla else ''}) took "
                          f"{now - self.meter.start:.1f}s")
            self._progress(step, None, now)
        elif step != before.step and (step % self.config.display_loss_steps == 0
                                      or step >= self.config.num_train_steps or before.stop > 0):
            self._progress(step, step, now)

    def _progress(self, step, done, now):
        """A progress line (and its dllogger record and TensorBoard scalars) for ``step`` with the last loss read."""
        throughput, elapsed, remaining = self.meter.line(now, done)
        trainer, total, loss = self.trainer, self.config.num_train_steps, self.last_loss
        lr = float(trainer.schedule(max(int(trainer.optimizer.iterations.numpy()) - 1, 0)))
        data = {"loss": loss, "learning_rate": lr, "throughput_train": throughput}
        skipped = int(trainer.skipped_steps.numpy())
        if self.runtime.loss_scaling:
            data["loss_scale"] = float(trainer.loss_scale.numpy())
        text = (f"step {step}/{total} ({100.0 * step / total:.0f}%) loss {loss:.4f} lr {lr:.3g} "
                f"{throughput:.1f} sentences/s, elapsed {_clock(elapsed)}"
                + (f", left ~{_clock(remaining)}" if remaining is not None else ""))
        if skipped:
            data["skipped_steps"] = skipped
            text += f", {skipped} non-finite step(s) skipped"
        if self.runtime.loss_scaling:
            text += f", loss scale {data['loss_scale']:g}"
        self.log.log(step, data, text=text)
        trainer.write_summaries(step, data, prefix="train/")
