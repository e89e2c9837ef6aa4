"""Two TF_CONFIG workers at real length and under faults: a flat thread count over thousands of steps, resuming
past step 4096, checkpoints slower than BIOBERT_COLLECTIVE_TIMEOUT, a hung or killed peer, preemption signals
before the first step and during a checkpoint. The workers are real processes talking gRPC on loopback."""
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# A tiny per-token classifier trained on a shared output folder. argv: repo, output folder, steps, checkpoint every
# N steps (0: only at the end), options (JSON):
#   threads: train one step, count this process's threads, then train on (the counts are printed at the end);
#   slow_save: seconds the chief's every checkpoint takes longer (after writing save_marker: its step);
#   signal_in_save: the chief sends itself SIGTERM within its checkpoint of that step;
#   slow_start: seconds worker 1 waits (after writing start_marker) between its restore and training, as a slow
#   restore or input positioning would.
WORKER = textwrap.dedent('''
    import json, os, sys, signal, time
    sys.path[:0] = [sys.argv[1], os.path.join(sys.argv[1], "tests")]
    from biobert import distribution
    runtime = distribution.setup(log=print)
    import keras
    import tensorflow as tf
    from biobert import batching, checkpoints, defaults, modeling, runcontrol, training
    from biobert.dllogger import RunLog
    from biobert.errors import PREEMPTED_EXIT_STATUS, InputError, Preempted
    from helpers import token_task

    out, steps, save = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    opts = json.loads(sys.argv[5]) if len(sys.argv) > 5 else {}
    me = runtime.worker_index
    runcontrol.PREEMPTION.install()                 # as every entry point does at start-up (job.start_job)

    def threads():
        return len(os.listdir("/proc/self/task"))

    def publish(path, text):
        with open(path + ".tmp", "w") as f:
            f.write(text)
        os.replace(path + ".tmp", path)

    if runtime.is_chief and (opts.get("slow_save") or opts.get("signal_in_save") or opts.get("save_marker")):
        real_save = checkpoints.save_checkpoint

        def slow_save(directory, step, *args, **kwargs):
            if opts.get("save_marker"):
                publish(opts["save_marker"], str(step))
            if opts.get("signal_in_save") == step:
                os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(opts.get("slow_save", 0))
            return real_save(directory, step, *args, **kwargs)
        checkpoints.save_checkpoint = slow_save

    feats, loss_fn, config = token_task()
    config.num_hidden_layers = 1
    keras.utils.set_random_seed(3)
    cfg = training.TrainConfig(output_dir=out, learning_rate=1e-3, num_train_steps=steps, save_checkpoints_steps=save,
                               display_loss_steps=10 ** 9, progress_seconds=10 ** 9,
                               num_accumulation_steps=opts.get("accumulate", 1), use_xla=False,
                               **defaults.FINETUNING)
    trainer = training.Trainer(runtime, lambda: modeling.BertClassifier(config, 4, per_token=True), loss_fn, cfg,
                               RunLog(None, enabled=False))

    def batches():
        return batching.training_batches(feats, 16, 8, seed=1, start_step=int(trainer.consumed_batches.numpy()))

    first = None
    try:
        step = trainer.restore_latest()
        print("worker", me, "starts at step", step, flush=True)
        if opts.get("slow_start") and me == 1:
            publish(opts["start_marker"], str(step))
            time.sleep(opts["slow_start"])
        if opts.get("threads"):
            cfg.num_train_steps = step + 1
            trainer.fit(batches())
            first = threads()
            cfg.num_train_steps = steps
        trainer.fit(batches())
    except InputError as err:
        print("error:", err, flush=True)
        sys.exit(1)
    except Preempted as err:
        print("preempted:", err, flush=True)
        print("state file names", os.path.basename(tf.train.latest_checkpoint(out)), flush=True)
        sys.exit(PREEMPTED_EXIT_STATUS)
    print("worker", me, "done at step", int(trainer.global_step.numpy()), "threads", first, threads(), flush=True)


    def collectives(function):
        """How many collective ops the graphs traced for a step function hold."""
        count = 0
        for concrete in getattr(function, "function", function)._list_all_concrete_functions():
            graph = concrete.graph.as_graph_def()
            nodes = list(graph.node) + [n for f in graph.library.function for n in f.node_def]
            count += sum(n.op.startswith(("Collective", "Nccl")) for n in nodes)
        return count
    print("collectives: micro-batch", collectives(trainer.train_step.accumulate), "step", collectives(trainer.train_step.apply))
''')


@pytest.fixture
def worker(tmp_path):
    path = tmp_path / "worker.py"
    path.write_text(WORKER)
    return path


def start(worker, folder, steps, save=0, workers=2, timeout=None, **opts):
    """``workers`` processes of WORKER on ``folder`` (two: a TF_CONFIG cluster on loopback)."""
    from system import free_port_base

    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMPI_", "SLURM_", "PMI", "TF_CONFIG"))}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    if timeout is not None:
        env["BIOBERT_COLLECTIVE_TIMEOUT"] = str(timeout)
    base = free_port_base(workers)
    cluster = {"worker": [f"localhost:{base + i}" for i in range(workers)]}
    procs = []
    for i in range(workers):
        if workers > 1:
            env["TF_CONFIG"] = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})
        procs.append(subprocess.Popen([sys.executable, str(worker), REPO, str(folder), str(steps), str(save),
                                       json.dumps(opts)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      text=True, env=dict(env)))
    return procs


def finish(procs, timeout=600):
    """[(output, exit status)] of every process, killed if they outlast ``timeout``."""
    try:
        return [(p.communicate(timeout=timeout)[0], p.returncode) for p in procs]
    finally:
        for p in procs:
            p.kill()


def worker_0_error(procs, marker, sig, after=0.0):
    """Once ``marker`` exists (and ``after`` seconds more) send ``sig`` to worker 1; worker 0 must exit 1 with one
    error line. Returns (that line, worker 0's output)."""
    try:
        wait_for(marker, procs)
        time.sleep(after)
        procs[1].send_signal(sig)
        output = procs[0].communicate(timeout=300)[0]
    finally:
        for p in procs:
            p.kill()
    assert procs[0].returncode == 1, output
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, output
    return errors[0], output


def wait_for(path, procs, timeout=300):
    deadline = time.time() + timeout
    while not os.path.exists(path):
        assert time.time() < deadline and all(p.poll() is None for p in procs), [finish(procs, 5)]
        time.sleep(0.05)
    return open(path).read()


def done(output):
    """(worker, step, threads after the first step or None, threads at the end) from a worker's last line."""
    match = re.search(r"worker (\d) done at step (\d+) threads (\w+) (\d+)", output)
    assert match, output
    return [None if g == "None" else int(g) for g in match.groups()]


def test_two_workers_train_thousands_of_steps_with_a_flat_thread_count_and_resume_past_step_4096(worker, tmp_path):
    """Each collective with a timeout of its own would start a thread that lives for the timeout (several a step):
    the count after 4097 steps stays within a few threads of the count after the first. Step 4097 then resumes
    on both workers: an agreement check in float32 would see 4097**2 as 16785408 and refuse."""
    shared = tmp_path / "shared"
    for output, code in finish(start(worker, shared, 4097, threads=True)):
        assert code == 0, output
        index, step, first, last = done(output)
        assert step == 4097
        assert last - first <= 8, f"worker {index}: {first} threads after the first step, {last} after 4097"
    for index, (output, code) in enumerate(finish(start(worker, shared, 4100))):
        assert code == 0, output
        assert f"worker {index} starts at step 4097" in output
        assert done(output)[1] == 4100


def test_accumulated_micro_batches_make_no_collective_of_their_own(worker, tmp_path):
    """With --allreduce_post_accumulation a step is one all-reduce (gradients, preemption flags and the loss for
    the progress line together): the micro-batches before the last make none."""
    for output, code in finish(start(worker, tmp_path / "shared", 3, accumulate=3)):
        assert code == 0, output
        match = re.search(r"collectives: micro-batch (\d+) step (\d+)", output)
        assert match and int(match.group(1)) == 0 and int(match.group(2)) >= 1, output


def test_checkpoints_and_a_start_slower_than_the_collective_timeout_do_not_stop_the_run(worker, tmp_path):
    """BIOBERT_COLLECTIVE_TIMEOUT=1: the chief's checkpoints take 3 s each while worker 1 waits for it, and worker 1
    starts 3 s after the chief (a slow restore or input positioning) while the chief waits: the run finishes. Then
    a signal before the first step of a longer run stops both workers at the step they resumed, with exit 75."""
    shared = tmp_path / "shared"
    results = finish(start(worker, shared, 12, save=5, timeout=1, slow_save=3, slow_start=3,
                           start_marker=str(tmp_path / "starting")))
    for output, code in results:
        assert code == 0, output
        assert done(output)[1] == 12
    marker = tmp_path / "starting-again"
    procs = start(worker, shared, 20, timeout=1, slow_start=3, start_marker=str(marker))
    assert wait_for(marker, procs) == "12"                 # worker 1 restored step 12, not yet training
    procs[1].send_signal(signal.SIGTERM)
    for output, code in finish(procs):
        assert code == 75, output
        assert "at step 12, before training further" in output
        assert "state file names model.ckpt-12" in output


def test_a_signal_during_the_chiefs_checkpoint_stops_both_once_it_is_complete(worker, tmp_path):
    """SIGTERM to worker 1 while the chief writes the checkpoint of step 5 (slowly): both exit 75 at step 5, and
    worker 1 only once the state file names that checkpoint."""
    shared = tmp_path / "shared"
    marker = tmp_path / "saving"
    procs = start(worker, shared, 10 ** 6, save=5, slow_save=4, save_marker=str(marker))
    assert wait_for(marker, procs) == "5"
    procs[1].send_signal(signal.SIGTERM)
    outputs = finish(procs)
    for output, code in outputs:
        assert code == 75, output
        assert "after saving a checkpoint at step 5" in output
        assert "state file names model.ckpt-5" in output
    assert "stopped on SIGTERM" in outputs[1][0] and "on another worker" in outputs[0][0]


def test_a_signal_during_the_last_checkpoint_exits_75_with_it_complete(worker, tmp_path):
    """One process: SIGTERM while the final checkpoint is written still ends with that checkpoint whole and named,
    and exit status 75 (run again: the rerun finds training complete)."""
    shared = tmp_path / "shared"
    [(output, code)] = finish(start(worker, shared, 6, workers=1, signal_in_save=6, slow_save=1))
    assert code == 75, output
    assert "stopped on SIGTERM after saving a checkpoint at step 6" in output
    assert "state file names model.ckpt-6" in output


def test_a_hung_worker_stops_the_other_after_the_collective_timeout(worker, tmp_path):
    """Worker 1 stopped (SIGSTOP: alive, answering nothing): worker 0 stops with the one-line error once it has
    waited BIOBERT_COLLECTIVE_TIMEOUT seconds longer than its longest step (before TensorFlow's health check, every
    30 s, or its heartbeats would notice)."""
    marker = tmp_path / "starting"
    procs = start(worker, tmp_path / "shared", 10 ** 6, timeout=3, slow_start=0.01, start_marker=str(marker))
    # 8 s into training, away from checkpoints (the watchdog rests in those)
    error, output = worker_0_error(procs, marker, signal.SIGSTOP, after=8)
    assert "lost contact with another worker" in error, output
    assert re.search(r"no step completed in \d+ s, BIOBERT_COLLECTIVE_TIMEOUT \(3 s\) over the longest step",
                     error), error


def test_a_worker_killed_before_the_first_step_stops_the_other_with_the_one_line_error(worker, tmp_path):
    """kill -9 of worker 1 while it positions its input: worker 0, waiting in the collective that opens training,
    stops with the same one line as for a worker lost mid-training."""
    marker = tmp_path / "starting"
    procs = start(worker, tmp_path / "shared", 10, slow_start=60, start_marker=str(marker))
    error, output = worker_0_error(procs, marker, signal.SIGKILL)
    assert "lost contact with worker 1" in error and "resume" in error, output


def test_a_signal_while_no_training_step_is_under_way_exits_75_at_once():
    """After start-up and outside the training loop (evaluating, predicting) a preemption signal ends the process
    with exit status 75 and one line, instead of the default action."""
    code = textwrap.dedent('''
        import os, signal, sys, time
        sys.path.insert(0, sys.argv[1])
        from biobert import runcontrol
        from biobert.errors import Preempted
        runcontrol.PREEMPTION.install()
        try:
            os.kill(os.getpid(), signal.SIGUSR1)
            time.sleep(30)
        except Preempted as err:
            print("preempted:", err)
            sys.exit(75)
    ''')
    proc = subprocess.run([sys.executable, "-c", code, REPO], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert proc.returncode == 75, proc.stdout + proc.stderr
    assert "stopped on SIGUSR1 while no training step was under way" in proc.stdout


def test_a_collective_failing_in_nccl_is_the_lost_contact_line():
    import tensorflow as tf

    from biobert import runcontrol

    nccl = tf.errors.InternalError(None, None, "NCCL: unhandled system error (run with NCCL_DEBUG=INFO)\nmore")
    assert runcontrol.is_lost_contact(nccl)
    assert not runcontrol.is_lost_contact(tf.errors.InternalError(None, None, "some other internal error"))
    assert not runcontrol.is_lost_contact(tf.errors.InvalidArgumentError(None, None, "bad shape"))
    message = str(runcontrol.worker_lost(nccl, "/out"))
    assert "\n" not in message and message.startswith("/out: lost contact with another worker (InternalError: NCCL")
