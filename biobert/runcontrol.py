"""How a training run stops before its last step, and says why: preemption signals (stop after a checkpoint, exit
status 75: run the same job again), a hung or lost peer in a multi-worker run (``CollectiveWatchdog``,
``WorkerLost``) and divergence (``TrainingDiverged``). The training loop (biobert.train_loop) acts on them."""
import contextlib
import re
import signal
import threading
import time

import tensorflow as tf

from biobert.errors import InputError, Preempted

PREEMPTION_SIGNALS = ("SIGTERM", "SIGUSR1")
OTHER_WORKER = "a preemption signal (on another worker)"     # the signal named in Preempted when a peer caught it


class PreemptionSignals:
    """SIGTERM and SIGUSR1 (what Slurm sends before a time limit or preemption) as a request to stop and run again.

    Once ``install``ed (every job does at start-up, job.start_job) a signal is recorded in ``caught``. While a
    training run is under way (``hold``: from the restore of a run that will train; ``deferred``: the training loop
    and its last checkpoint) that is all: the loop acts on it where every worker can agree, and stops after a
    complete checkpoint. At any other moment nothing is being written that a rerun needs, so the signal raises
    ``Preempted`` at once (exit status 75: run the same job again). Main thread only; elsewhere a no-op.
    """

    def __init__(self):
        self.caught = []
        self._deferred = 0
        self._held = False
        self._previous = {}

    def install(self):
        """Handle the signals from now on; True when this call installed the handlers."""
        if self._previous or threading.current_thread() is not threading.main_thread():
            return False
        self.caught.clear()
        for name in PREEMPTION_SIGNALS:
            number = getattr(signal, name, None)
            if number is not None:
                self._previous[number] = signal.signal(number, self._handle)
        return True

    def uninstall(self):
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous = {}

    def _handle(self, signum, frame):
        name = signal.Signals(signum).name
        self.caught.append(name)
        if not self._deferred:
            raise Preempted(None, name, saved=False)

    def hold(self):
        """Record signals only, from now until the next training loop ends (a run's restore, input positioning
        and compilation come before its first step). Without installed handlers there is nothing to hold."""
        if self._previous and not self._held:
            self._held = True
            self._deferred += 1

    @contextlib.contextmanager
    def deferred(self):
        """Within the block signals are recorded only (handlers installed for the block when none are); on the
        way out, a ``hold`` ends too. Yields the list of caught signal names."""
        installed = self.install()
        self._deferred += 1
        try:
            yield self.caught
        finally:
            self._deferred -= 1
            if self._held:
                self._held = False
                self._deferred -= 1
            if installed:
                self.uninstall()


PREEMPTION = PreemptionSignals()     # the process's one: job.start_job installs it, the Trainer defers it


class CollectiveWatchdog:
    """Stops a multi-worker run whose steps stop completing: once this worker has gone ``timeout`` seconds longer
    than its longest step so far without a ``beat``, every collective of this process is aborted
    (DeadlineExceeded), so a worker waiting for a hung peer stops instead of hanging. (Counting from the longest
    step lets a step that is merely slow, a large model on a CPU, run as long as it takes.) One thread for the whole
    run: a collective's own ``timeout_seconds`` starts a thread per collective that lives for the whole timeout,
    so many at once in a fast run. Disarmed (``pause``) where a peer may legitimately keep the others waiting:
    before the first step (restore, input positioning, compilation) and around checkpoints (the chief writes, the
    others wait at a barrier). A dead or unreachable peer is found sooner by TensorFlow's own health check, which
    aborts the collectives the same way."""

    def __init__(self, timeout):
        self.timeout = timeout
        self.since = None                 # time.monotonic() of the last beat; None: disarmed
        self.longest = 0.0                # the longest time armed so far (from a beat to the next beat or pause)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True, name="collective-watchdog")
        self._thread.start()

    def beat(self):
        self._measure()
        self.since = time.monotonic()

    def pause(self):
        self._measure()
        self.since = None

    def _measure(self):
        since = self.since
        if since is not None:
            self.longest = max(self.longest, time.monotonic() - since)

    def _watch(self):
        while not self._stop.wait(min(1.0, self.timeout / 4)):
            since = self.since
            waited = time.monotonic() - since if since is not None else 0.0
            if waited > self.timeout + self.longest:
                from tensorflow.python.eager import context

                context.context().abort_collective_ops(
                    tf.errors.DEADLINE_EXCEEDED, f"no step completed in {waited:.0f} s, BIOBERT_COLLECTIVE_TIMEOUT "
                    f"({self.timeout:g} s) over the longest step: a worker hung or is unreachable")
                return

    def close(self):
        self._stop.set()


class TrainingDiverged(InputError):
    """Too many consecutive steps with non-finite gradients."""


class WorkerLost(InputError):
    """Another worker of a multi-worker run died or became unreachable."""


def is_lost_contact(err):
    """Whether ``err`` is a collective failing because a peer is gone, hung or unreachable: TensorFlow's errors
    for a lost peer, an aborted or timed-out collective, and NCCL's own (reported as Internal or Unknown)."""
    if isinstance(err, (tf.errors.UnavailableError, tf.errors.DeadlineExceededError, tf.errors.AbortedError,
                        tf.errors.CancelledError)):
        return True
    return isinstance(err, (tf.errors.InternalError, tf.errors.UnknownError)) and "nccl" in str(err).lower()


@contextlib.contextmanager
def stop_on_lost_worker(num_workers, output_dir):
    """In a multi-worker run, a collective that fails for a lost, hung or unreachable peer (or NCCL) becomes
    the one-line WorkerLost error."""
    try:
        yield
    except tf.errors.OpError as err:
        if num_workers <= 1 or not is_lost_contact(err):
            raise
        raise worker_lost(err, output_dir) from None


def worker_lost(err, output_dir):
    """The one-line message for a collective that failed because a peer is gone (the task named if TF says)."""
    tasks = sorted(set(re.findall(r"/job:(\w+)/replica:\d+/task:(\d+)", str(err))))
    who = ", ".join(f"{job} {task}" for job, task in tasks) or "another worker"
    first = [line.strip() for line in str(err).strip().splitlines() if line.strip()]
    reason = next((line for line in first if "aborted by" in line or "Error received" in line
                   or "BIOBERT_COLLECTIVE_TIMEOUT" in line), first[0] if first else type(err).__name__)
    return WorkerLost(f"lost contact with {who} ({type(err).__name__}: {reason[:160]}); this worker stops. The last "
                      "checkpoint in output_dir is intact: start the same job again to resume", path=output_dir)
