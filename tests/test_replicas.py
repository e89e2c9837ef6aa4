"""Many replicas, one model: the combined-gradient step under loss scaling, per-replica dropout masks, the
learning-rate and optimizer semantics, and pre-training input sharded per worker and resumed without re-reading."""
import contextlib
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Two replicas on two logical CPU devices, loss scaling on (as mixed_float16 on GPUs runs it), clipping on.
SCRIPT = textwrap.dedent('''
    import os, sys, tempfile
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    sys.path[:0] = [sys.argv[1], os.path.join(sys.argv[1], "tests")]
    from biobert import batching, distribution, modeling, training
    from biobert.dllogger import RunLog
    from helpers import token_task, tiny_config

    feats, base_loss, config = token_task()

    def loss_fn(batch, logits):
        # A row marked "poison" makes its replica's gradient infinite.
        poisoned = tf.reduce_max(batch["poison"]) > 0
        return base_loss(batch, logits) * tf.where(poisoned, np.float32(np.inf), np.float32(1.0))

    def batch(rows, poison_second_half=False):
        b = batching.pad_batch([feats[i] for i in rows], 8)
        b["poison"] = np.zeros(len(rows), np.float32)
        if poison_second_half:
            b["poison"][len(rows) // 2:] = 1.0       # replica 1's share only
        return b

    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])

    def train(batches, steps):
        runtime = distribution.Runtime(strategy=mirrored, num_replicas=2, num_workers=1, worker_index=0,
                                       device="cpu", policy="float32", loss_scaling=True, description="two")
        keras.utils.set_random_seed(3)
        cfg = training.TrainConfig(output_dir=tempfile.mkdtemp(), learning_rate=1e-3, num_train_steps=steps,
                                   clip_norm=1.0, display_loss_steps=1, save_checkpoints_steps=0,
                                   init_loss_scale=1024.0, use_xla=False)
        trainer = training.Trainer(runtime, lambda: modeling.BertClassifier(config, 4, per_token=True), loss_fn,
                                   cfg, RunLog(None, enabled=False))
        trainer.fit(iter(batches))
        return trainer

    clean1, clean2 = batch(range(0, 16)), batch(range(16, 32))
    reference = train([clean1, clean2], 2)
    skipping = train([clean1, batch(range(32, 48), poison_second_half=True), clean2], 2)
    print("steps", int(skipping.global_step.numpy()), int(skipping.optimizer.iterations.numpy()),
          "skipped", int(skipping.skipped_steps.numpy()), "scale", float(skipping.loss_scale.numpy()),
          "reference scale", float(reference.loss_scale.numpy()))
    for name, var in skipping.variables.items():
        copies = [v.numpy() for v in var.value.values]
        assert np.array_equal(copies[0], copies[1]), name          # both replicas skipped the same step
        assert np.isfinite(copies[0]).all(), name
        np.testing.assert_allclose(copies[0], reference.variables[name].numpy(), rtol=0, atol=1e-6)
    print("weights equal the run without the poisoned batch")

    # Dropout: each replica its own masks; the same masks again from the same seed state.
    dropout_config = tiny_config(hidden_dropout_prob=0.3, attention_probs_dropout_prob=0.3)
    with mirrored.scope():
        keras.utils.set_random_seed(5)
        model = modeling.build(modeling.BertClassifier(dropout_config, 4, per_token=True))
    states = modeling.dropout_states(model)
    start = {n: v.numpy() for n, v in states.items()}
    same_rows = batching.pad_batch([feats[i] for i in range(4)], 8)

    @tf.function
    def forward(inputs):
        return mirrored.run(lambda b: model(b, training=True), args=(inputs,))

    def outputs():
        inputs = mirrored.experimental_distribute_values_from_function(
            lambda ctx: {k: tf.constant(v) for k, v in same_rows.items()})
        return [t.numpy() for t in mirrored.experimental_local_results(forward(inputs))]

    first = outputs()
    print("replicas apart by", float(np.abs(first[0] - first[1]).max()))
    assert float(np.abs(first[0] - first[1]).max()) > 1e-3
    for name, var in states.items():
        var.assign(start[name])
    again = outputs()
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    print("dropout masks differ between replicas and repeat from the same seed state")
''')


def test_two_replicas_skip_a_step_that_is_infinite_on_one_and_draw_their_own_dropout(tmp_path):
    script = tmp_path / "replicas.py"
    script.write_text(SCRIPT)
    proc = subprocess.run([sys.executable, str(script), REPO], capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # The poisoned step counted nowhere (step, optimizer iterations, schedule) and halved the loss scale.
    assert "steps 2 2 skipped 1 scale 512.0 reference scale 1024.0" in proc.stdout
    assert "weights equal the run without the poisoned batch" in proc.stdout
    assert "dropout masks differ between replicas and repeat from the same seed state" in proc.stdout


def test_non_finite_steps_in_a_row_stop_the_run(tmp_path):
    import keras
    import tensorflow as tf
    from helpers import token_task

    from biobert import batching, distribution, modeling, runcontrol, training
    from biobert.dllogger import RunLog

    feats, base_loss, config = token_task()
    runtime = distribution.Runtime(strategy=tf.distribute.get_strategy(), num_replicas=1, num_workers=1,
                                   worker_index=0, device="cpu", policy="float32", loss_scaling=False,
                                   description="one")
    keras.utils.set_random_seed(3)
    cfg = training.TrainConfig(output_dir=str(tmp_path), learning_rate=1e-3, num_train_steps=10,
                               display_loss_steps=1, save_checkpoints_steps=0, max_nonfinite_steps=3,
                               use_xla=False)
    trainer = training.Trainer(runtime, lambda: modeling.BertClassifier(config, 4, per_token=True),
                               lambda batch, logits: base_loss(batch, logits) * np.float32(np.nan), cfg,
                               RunLog(None, enabled=False))
    before = trainer.variables["output_weights"].numpy().copy()
    with pytest.raises(runcontrol.TrainingDiverged, match="3 steps in a row had non-finite gradients"):
        trainer.fit(batching.training_batches(feats, 16, 8, seed=1))
    assert int(trainer.global_step.numpy()) == 0 and int(trainer.optimizer.iterations.numpy()) == 0
    np.testing.assert_array_equal(trainer.variables["output_weights"].numpy(), before)


def test_adam_moments_without_and_with_bias_correction():
    """Google's AdamWeightDecayOptimizer (the default): the first update is m / sqrt(v) = 0.1 g / (0.0316 |g|);
    with bias correction it is g / |g|."""
    import tensorflow as tf

    from biobert import optimization

    for correction, expected in ((False, 0.1 / np.sqrt(0.001)), (True, 1.0)):
        opt = optimization.AdamWeightDecay(1.0, weight_decay_rate=0.0, epsilon=0.0, bias_correction=correction)
        var = tf.Variable([1.0, -2.0])
        opt.build([var])
        opt.apply_reduced([tf.constant([0.5, -0.25])], [var])
        np.testing.assert_allclose(var.numpy(), [1.0 - expected, -2.0 + expected], rtol=1e-5, atol=1e-4)
        assert int(opt.iterations.numpy()) == 1


def test_lamb_schedule_decays_with_power_one_half():
    from biobert import optimization

    schedule = optimization.WarmupPolynomialDecay(1.0, total_steps=100, warmup_steps=10, power=0.5)
    assert float(schedule(5)) == pytest.approx(0.5)
    for step in (10, 36, 75, 99):
        assert float(schedule(step)) == pytest.approx(np.sqrt(1 - step / 100), rel=1e-5)


def test_ports_of_two_jobs_on_a_node_do_not_collide(monkeypatch):
    from biobert import distribution

    for name in distribution.JOB_ID_VARIABLES + ("BIOBERT_PORT_BASE", "SLURM_STEP_ID"):
        monkeypatch.delenv(name, raising=False)
    bases = {}
    for job in ("4101", "4102", "4103"):
        monkeypatch.setenv("SLURM_JOB_ID", job)
        bases[job] = distribution._port_base()
        assert bases[job] == distribution._port_base()          # every task of the job agrees
        assert 10000 <= bases[job] and bases[job] + 63 < 32768     # below the ephemeral range
    assert len(set(bases.values())) == 3
    monkeypatch.delenv("SLURM_JOB_ID")
    monkeypatch.setenv("PMIX_NAMESPACE", "prterun-node1-51234@1")      # an Open MPI job
    mpi = distribution._port_base()
    monkeypatch.setenv("PMIX_NAMESPACE", "prterun-node1-51299@1")
    assert distribution._port_base() != mpi
    monkeypatch.setenv("BIOBERT_PORT_BASE", "40000")
    assert distribution._port_base() == 40000


SEQ, PRED = 8, 2


@pytest.fixture(scope="module")
def numbered_records(tmp_path_factory):
    """4 record files of 8 records each; record k carries k in input_ids[0] (k = 1..32)."""
    import tensorflow as tf

    folder = tmp_path_factory.mktemp("numbered")

    def ints(values):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=values))

    number = 1
    for f in range(4):
        with tf.io.TFRecordWriter(str(folder / f"part-{f}.tfrecord")) as writer:
            for _ in range(8):
                features = {"input_ids": ints([number] + [0] * (SEQ - 1)), "input_mask": ints([1] * SEQ),
                            "segment_ids": ints([0] * SEQ), "masked_lm_positions": ints([1] * PRED),
                            "masked_lm_ids": ints([1] * PRED), "next_sentence_labels": ints([0]),
                            "masked_lm_weights": tf.train.Feature(float_list=tf.train.FloatList(value=[1.0] * PRED))}
                writer.write(tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString())
                number += 1
    return str(folder)


def record_numbers(batches):
    return [int(n) for b in batches for n in b["input_ids"][:, 0].numpy()]


def test_two_pretraining_workers_read_disjoint_records_and_together_all(numbered_records):
    import tensorflow as tf

    from biobert import pretraining_data

    seen = []
    for worker in range(2):
        context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=worker, num_replicas_in_sync=2)
        ds = pretraining_data.pretraining_dataset(numbered_records, SEQ, PRED, 4, is_training=True, seed=7,
                                                  input_context=context, shuffle_buffer=8)
        seen.append(record_numbers(ds.take(8)))          # 32 draws from its 2 files of 16 records
    assert len(set(seen[0])) == 16 and len(set(seen[1])) == 16
    assert not set(seen[0]) & set(seen[1])
    assert set(seen[0]) | set(seen[1]) == set(range(1, 33))


def test_resumed_pretraining_input_reads_no_record_twice(numbered_records, tmp_path):
    from biobert import pretraining, pretraining_data

    def dataset():
        return pretraining_data.pretraining_dataset(numbered_records, SEQ, PRED, 4, is_training=True, seed=7,
                                                    shuffle_buffer=8)

    uninterrupted = record_numbers(dataset().take(8))
    lines = []
    log = type("Log", (), {"info": staticmethod(lines.append)})()
    position = pretraining.InputPosition(str(tmp_path), worker_index=0)
    first = iter(dataset())
    consumed = record_numbers(next(first) for _ in range(3))
    position.save(first, step=3)
    resumed = iter(dataset())
    assert position.restore(resumed, 3, log)
    rest = record_numbers(next(resumed) for _ in range(5))
    # The resumed stream is the uninterrupted one's continuation: nothing is skipped, nothing read again.
    assert consumed + rest == uninterrupted
    assert not position.restore(iter(dataset()), 4, log)           # no position saved at step 4
    assert os.listdir(tmp_path / "input_position") == ["worker_0"]


def test_an_input_position_is_written_whole_or_not_at_all(numbered_records, tmp_path, monkeypatch):
    """A full disk while a worker writes its input position: no partial files under the step's name (a resume would
    read them), the positions saved before stay, and one clear error."""
    import tensorflow as tf

    from biobert import pretraining, pretraining_data
    from biobert.errors import InputError

    iterator = iter(pretraining_data.pretraining_dataset(numbered_records, SEQ, PRED, 4, is_training=True, seed=7,
                                                         shuffle_buffer=8))
    position = pretraining.InputPosition(str(tmp_path), worker_index=0)
    next(iterator)
    position.save(iterator, step=1)
    real_write = tf.train.Checkpoint.write

    def full_disk(self, prefix, **kwargs):
        path = real_write(self, prefix, **kwargs)                           # the bytes reach the disk...
        for name in os.listdir(position.folder):
            if name.endswith(".data-00000-of-00001") and "step-2" in name:
                with open(os.path.join(position.folder, name), "r+b") as f:
                    f.truncate(5)
        raise tf.errors.ResourceExhaustedError(None, None, "No space left on device")   # ...then ENOSPC

    monkeypatch.setattr(tf.train.Checkpoint, "write", full_disk)
    next(iterator)
    with pytest.raises(InputError, match="cannot write the input position for step 2 .No space left on device."):
        position.save(iterator, step=2)
    monkeypatch.undo()
    assert sorted(os.listdir(position.folder)) == ["step-1.data-00000-of-00001", "step-1.index"]
    log = type("Log", (), {"info": staticmethod(lambda text: None)})()
    assert not position.restore(iter(pretraining_data.pretraining_dataset(
        numbered_records, SEQ, PRED, 4, is_training=True, seed=7, shuffle_buffer=8)), 2, log)


def test_resume_with_another_replica_count_is_refused(tmp_path):
    import keras
    import tensorflow as tf
    from helpers import token_task

    from biobert import batching, distribution, modeling, training
    from biobert.dllogger import RunLog
    from biobert.errors import InputError

    feats, loss_fn, config = token_task()
    runtime = distribution.Runtime(strategy=tf.distribute.get_strategy(), num_replicas=1, num_workers=1,
                                   worker_index=0, device="cpu", policy="float32", loss_scaling=False,
                                   description="one")

    def trainer():
        keras.utils.set_random_seed(3)
        cfg = training.TrainConfig(output_dir=str(tmp_path), learning_rate=1e-3, num_train_steps=2,
                                   save_checkpoints_steps=0, use_xla=False)
        return training.Trainer(runtime, lambda: modeling.BertClassifier(config, 4, per_token=True), loss_fn, cfg,
                                RunLog(None, enabled=False))

    first = trainer()
    first.fit(batching.training_batches(feats, 16, 8, seed=1))
    assert trainer().restore_latest() == 2                           # the same replica count resumes
    first.saved_replicas.assign(8)                                    # as if written by a run on 8 replicas
    first.save()
    with pytest.raises(InputError, match="written by a run on 8 replica.s. and this run has 1"):
        trainer().restore_latest()


RESUMING_WORKER = textwrap.dedent('''
    import os, sys
    sys.path[:0] = [sys.argv[1], os.path.join(sys.argv[1], "tests")]
    from biobert import distribution
    runtime = distribution.setup(log=print)
    import keras
    from biobert import batching, modeling, training
    from biobert.dllogger import RunLog
    from biobert.errors import PREEMPTED_EXIT_STATUS, InputError, Preempted
    from helpers import token_task

    feats, loss_fn, config = token_task()
    keras.utils.set_random_seed(3)
    cfg = training.TrainConfig(output_dir=sys.argv[2], learning_rate=1e-3, num_train_steps=int(sys.argv[3]),
                               save_checkpoints_steps=int(sys.argv[4]) if len(sys.argv) > 4 else 0, use_xla=False)
    trainer = training.Trainer(runtime, lambda: modeling.BertClassifier(config, 4, per_token=True), loss_fn, cfg,
                               RunLog(None, enabled=False))
    try:
        step = trainer.restore_latest()
        print("worker", runtime.worker_index, "starts at step", step, flush=True)
        trainer.fit(batching.training_batches(feats, 16, 8, seed=1, start_step=step))
    except InputError as err:
        print("error:", err, flush=True)
        sys.exit(1)
    except Preempted as err:
        print("preempted:", err, flush=True)
        sys.exit(PREEMPTED_EXIT_STATUS)
    print("worker", runtime.worker_index, "done at step", int(trainer.global_step.numpy()), flush=True)
''')


def start_two_workers(script, dirs, steps, save=0):
    import json

    from system import free_port_base

    base = free_port_base(2)
    cluster = {"worker": [f"localhost:{base}", f"localhost:{base + 1}"]}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMPI_", "SLURM_", "PMI", "TF_CONFIG"))}
    return [subprocess.Popen([sys.executable, str(script), REPO, str(d), str(steps), str(save)], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True,
                             env=dict(env, TF_CPP_MIN_LOG_LEVEL="2", TF_CONFIG=json.dumps(
                                 {"cluster": cluster, "task": {"type": "worker", "index": i}})))
            for i, d in enumerate(dirs)]


def run_two_workers(script, dirs, steps, save=0):
    procs = start_two_workers(script, dirs, steps, save)
    try:
        return [(p.communicate(timeout=300)[0], p.returncode) for p in procs]
    finally:
        for p in procs:
            p.kill()


def test_workers_that_see_different_checkpoints_stop_at_once(tmp_path):
    """The chief's output_dir holds a checkpoint at step 2, worker 1's (not shared) none: both stop with a message
    instead of training apart or hanging in the next all-reduce."""
    script = tmp_path / "worker.py"
    script.write_text(RESUMING_WORKER)
    shared = tmp_path / "shared"
    first = run_two_workers(script, [shared, shared], 2)
    assert [code for _, code in first] == [0, 0], first
    assert "worker 0 done at step 2" in first[0][0]
    second = run_two_workers(script, [shared, tmp_path / "elsewhere"], 4)
    for output, code in second:
        assert code == 1, output
        assert "workers resumed at different steps" in output and "shared file system" in output


def wait_for_a_checkpoint(procs, folder, timeout=300):
    """Until the running workers have written their first checkpoint in ``folder``."""
    import time

    from biobert import checkpoints

    deadline = time.time() + timeout
    while time.time() < deadline and not checkpoints.list_checkpoints(str(folder)):
        assert all(p.poll() is None for p in procs)
        time.sleep(0.5)


@contextlib.contextmanager
def two_workers_training(tmp_path):
    """Two TF_CONFIG workers training on a shared folder (checkpoints every 5 steps), from their first checkpoint
    on: yields (worker script, shared folder, processes); the processes are killed on the way out."""
    script = tmp_path / "worker.py"
    script.write_text(RESUMING_WORKER)
    shared = tmp_path / "shared"
    procs = start_two_workers(script, [shared, shared], 100000, save=5)
    try:
        wait_for_a_checkpoint(procs, shared)
        yield script, shared, procs
    finally:
        for p in procs:
            p.kill()


def test_a_killed_worker_stops_the_other_with_one_message_and_the_job_resumes(tmp_path):
    import signal
    import time

    from biobert import checkpoints

    with two_workers_training(tmp_path) as (script, shared, procs):
        procs[1].send_signal(signal.SIGKILL)                      # kill -9 of worker 1, mid-training
        killed = time.time()
        output = procs[0].communicate(timeout=150)[0]
        waited = time.time() - killed
    assert procs[0].returncode == 1, output
    assert waited < 120, waited
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "lost contact with worker 1" in errors[0] and "resume" in errors[0], output
    saved = int(checkpoints.latest_checkpoint(str(shared)).rsplit("-", 1)[1])
    again = run_two_workers(script, [shared, shared], saved + 2)
    for index, (out, code) in enumerate(again):
        assert code == 0, out
        assert f"worker {index} starts at step {saved}" in out
    assert f"worker 0 done at step {saved + 2}" in again[0][0]


def test_a_signal_to_one_worker_stops_both_after_the_same_step(tmp_path):
    """SIGTERM to worker 1 only: the request travels with the gradient all-reduce, so both workers finish the same
    step, the chief checkpoints it there, both exit 75."""
    import re
    import signal

    from biobert import checkpoints

    with two_workers_training(tmp_path) as (_, shared, procs):
        procs[1].send_signal(signal.SIGTERM)
        outputs = [p.communicate(timeout=150)[0] for p in procs]
    steps = []
    for p, out in zip(procs, outputs):
        assert p.returncode == 75, out
        match = re.search(r"preempted: stopped on (\S+) .*at step (\d+)", out)
        assert match, out
        steps.append(int(match.group(2)))
    assert "stopped on SIGTERM" in outputs[1] and "on another worker" in outputs[0]
    assert steps[0] == steps[1]
    assert checkpoints.latest_checkpoint(str(shared)).endswith(f"-{steps[0]}")
