"""Several processes on loopback: MultiWorkerMirroredStrategy from TF_CONFIG, ``mpirun`` and Slurm.

The processes are real (subprocesses talking gRPC on 127.0.0.1). ``mpirun`` is Debian's Open MPI; Slurm is
Debian's slurm-wlm with munge, run as a one-node cluster with its own config and ports; the tests install and
start them when missing.
"""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from system import SlurmCluster, ensure_debian_packages, free_port_base

from biobert import distribution

# One Slurm cluster and one set of reference runs for the module: its tests stay on one pytest-xdist worker.
pytestmark = pytest.mark.xdist_group("cluster")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Trains a tiny classifier for 4 steps on 64 fixed examples, global batch 16, through distribution.setup():
# under TF_CONFIG / mpirun each worker is one replica and takes its half of every global batch. Clipping by
# global norm is on (0.05: every step is clipped), so the workers must combine their gradients before clipping.
WORKER = textwrap.dedent('''
    import os, sys, tempfile
    import numpy as np
    sys.path[:0] = [sys.argv[1], os.path.join(sys.argv[1], "tests")]
    from biobert import distribution
    runtime = distribution.setup(log=print)
    import keras
    from biobert import batching, modeling, training
    from biobert.dllogger import RunLog
    from helpers import token_task

    feats, loss_fn, config = token_task()
    keras.utils.set_random_seed(3)
    cfg = training.TrainConfig(output_dir=tempfile.mkdtemp(), learning_rate=float(sys.argv[3]), num_train_steps=4,
                               clip_norm=0.05, display_loss_steps=1, save_checkpoints_steps=0, use_xla=False)
    trainer = training.Trainer(runtime, lambda: modeling.BertClassifier(config, 4, per_token=True), loss_fn,
                               cfg, RunLog(None, enabled=False))
    trainer.fit(batching.training_batches(feats, 16, 8, seed=1))
    np.savez(sys.argv[2], **{n.replace("/", "|"): v.numpy() for n, v in trainer.variables.items()})
    print("worker", runtime.worker_index, "of", runtime.num_workers, "replicas", runtime.num_replicas,
          "step", int(trainer.global_step.numpy()), "peak", trainer.peak_learning_rate)
    if runtime.num_workers > 1:
        print("replica devices:", " ".join(runtime.strategy.extended.worker_devices))
''')


def quiet_env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMPI_", "SLURM_", "PMI", "TF_CONFIG"))}
    env.update(TF_CPP_MIN_LOG_LEVEL="2", **extra)
    return env


def weights(path):
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


def max_difference(a, b):
    assert a.keys() == b.keys()
    return max(float(np.abs(a[k] - b[k]).max()) for k in a)


def assert_two_workers_match(path0, path1, reference):
    w0, w1 = weights(path0), weights(path1)
    assert max_difference(w0, w1) == 0.0            # the workers hold the same mirrored weights
    assert max_difference(w0, reference) < 1e-5     # and they are the one-process result


def rank_launcher(tmp_path, worker_script, rank_variable):
    """A shell script running the worker with its weights written to rank<N>.npz, N read from the
    launcher's rank variable (OMPI_COMM_WORLD_RANK, SLURM_PROCID)."""
    launcher = tmp_path / "launch.sh"
    launcher.write_text(f'exec "{sys.executable}" "{worker_script}" "{REPO}" '
                        f'"{tmp_path}/rank${rank_variable}.npz" 1e-3\n')
    return launcher


@pytest.fixture(scope="module")
def worker_script(tmp_path_factory):
    path = tmp_path_factory.mktemp("multiworker") / "worker.py"
    path.write_text(WORKER)
    return path


@pytest.fixture(scope="module")
def one_process_reference(worker_script, tmp_path_factory):
    """The same 4 steps in one process; learning rate 2e-3 = 1e-3 x 2 replicas (the workers scale it by the
    replicas in sync, as the original's Horovod runs by hvd.size(), and as one process with 2 devices does)."""
    out = tmp_path_factory.mktemp("reference") / "one.npz"
    proc = subprocess.run([sys.executable, str(worker_script), REPO, str(out), "2e-3"], capture_output=True,
                          text=True, timeout=600, env=quiet_env())
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "worker 0 of 1 replicas 1 step 4 peak 0.002" in proc.stdout
    return weights(out)


def test_two_tf_config_workers_train_like_one_process(worker_script, one_process_reference, tmp_path):
    base = free_port_base(2)
    cluster = {"worker": [f"localhost:{base}", f"localhost:{base + 1}"]}
    procs = []
    for index in range(2):
        tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        procs.append(subprocess.Popen([sys.executable, str(worker_script), REPO, str(tmp_path / f"w{index}.npz"),
                                       "1e-3"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                      env=quiet_env(TF_CONFIG=tf_config)))
    outputs = []
    try:
        for proc in procs:
            outputs.append(proc.communicate(timeout=600)[0])
    finally:
        for proc in procs:
            proc.kill()
    for index, (proc, out) in enumerate(zip(procs, outputs)):
        assert proc.returncode == 0, out
        assert f"worker {index} of 2 replicas 2 step 4 peak 0.002" in out
    assert "MultiWorkerMirroredStrategy over 2 workers; 2 replica(s)" in outputs[0]
    assert_two_workers_match(tmp_path / "w0.npz", tmp_path / "w1.npz", one_process_reference)


@pytest.fixture(scope="module")
def mpirun():
    ensure_debian_packages(["mpirun"], ["openmpi-bin"])
    return "mpirun"


def mpirun_command(mpirun, n, port_base):
    return [mpirun, "-np", str(n), "--allow-run-as-root", "--oversubscribe", "-bind-to", "none",
            "-x", f"BIOBERT_PORT_BASE={port_base}", "-x", "TF_CPP_MIN_LOG_LEVEL", "-x", "PATH"]


def test_mpirun_two_ranks_train_like_one_process(mpirun, worker_script, one_process_reference, tmp_path):
    launcher = rank_launcher(tmp_path, worker_script, "OMPI_COMM_WORLD_RANK")
    proc = subprocess.run(mpirun_command(mpirun, 2, free_port_base(2)) + ["bash", str(launcher)],
                          capture_output=True, text=True, timeout=600, env=quiet_env())
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "worker 0 of 2 replicas 2 step 4" in proc.stdout and "worker 1 of 2 replicas 2 step 4" in proc.stdout
    assert_two_workers_match(tmp_path / "rank0.npz", tmp_path / "rank1.npz", one_process_reference)


def test_mpirun_horovod_run_ner_end_to_end(mpirun, ner_slice, tmp_path):
    """The original's multi-GPU launch, `mpirun -np 2 python run_ner.py --horovod ...`, on tf.distribute."""
    out = tmp_path / "out"
    args = {"data_dir": ner_slice["data"], "bert_config_file": ner_slice["config"], "vocab_file": ner_slice["vocab"],
            "output_dir": out, "dllog_path": out / "dllog.json", "train_batch_size": 8, "learning_rate": 3e-3,
            "num_train_epochs": 2, "eval_batch_size": 16, "predict_batch_size": 16, "iterations_per_loop": 1}
    cmd = (mpirun_command(mpirun, 2, free_port_base(2)) + [sys.executable, os.path.join(REPO, "run_ner.py")]
           + [f"--{k}={v}" for k, v in args.items()] + ["--horovod", "--do_train", "--do_eval", "--do_predict",
                                                         "--noamp", "--nouse_xla"])
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=REPO, env=quiet_env())
    text = proc.stdout + proc.stderr
    assert proc.returncode == 0, text
    assert text.count("Horovod is not installed") == 1 and "running the same launch on tf.distribute" in text
    assert text.count("MultiWorkerMirroredStrategy over 2 workers; 2 replica(s)") == 1   # only the chief logs
    steps = 2 * (ner_slice["pieces"] // 16)       # global batch = 8 per replica x 2 replicas
    results = dict(line.strip().split(" = ") for line in open(out / "eval_results.txt"))
    assert int(results["global_step"]) == steps
    losses = [json.loads(line[5:])["data"]["loss"] for line in open(out / "dllog.json")
              if line.startswith("DLLL ") and '"loss"' in line]
    assert len(losses) == steps and np.mean(losses[-3:]) < np.mean(losses[:3])
    for name in ("test_labels.txt", "test_results_conlleval.txt", "label_map.json", "checkpoint"):
        assert (out / name).is_file(), name


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    cluster = SlurmCluster(str(tmp_path_factory.mktemp("slurm")))
    yield cluster
    cluster.stop()


def test_srun_two_tasks_train_like_one_process(slurm, worker_script, one_process_reference, tmp_path):
    """srun -n 2: the cluster comes from SlurmClusterResolver (SLURM_PROCID, SLURM_STEP_NODELIST, ...)."""
    launcher = rank_launcher(tmp_path, worker_script, "SLURM_PROCID")
    env = quiet_env(SLURM_CONF=slurm.env["SLURM_CONF"], BIOBERT_PORT_BASE=str(free_port_base(2)))
    proc = subprocess.run(["srun", "-N1", "-n2", "bash", str(launcher)], capture_output=True, text=True,
                          timeout=600, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr + slurm.logs()
    assert "worker 0 of 2 replicas 2 step 4" in proc.stdout and "worker 1 of 2 replicas 2 step 4" in proc.stdout
    # Each task's one replica is its CPU (no GPU here), not a device made up from Slurm's task layout.
    devices = [line.split(":", 1)[1].split() for line in proc.stdout.splitlines()
               if line.startswith("replica devices:")]
    assert sorted(devices) == [["/job:worker/replica:0/task:0/device:CPU:0"],
                               ["/job:worker/replica:0/task:1/device:CPU:0"]], proc.stdout
    assert_two_workers_match(tmp_path / "rank0.npz", tmp_path / "rank1.npz", one_process_reference)


def pretraining_job_folders(records, tmp_path):
    """The folders run_biobert.sub expects (Google's config, phase-1 records of the real PubMed sample) under
    tmp_path/data, and a tiny initial checkpoint: (data folder, init checkpoint prefix)."""
    from biobert import checkpoints, modeling
    from biobert.config import BertConfig

    data = tmp_path / "data"
    bert_dir = data / "download" / "google_pretrained_weights" / "uncased_L-12_H-768_A-12"
    bert_dir.mkdir(parents=True)
    (bert_dir / "bert_config.json").write_text(records["config"].read_text())
    tfrec = (data / "tfrecord" / "lower_case_1_seq_len_128_max_pred_20_masked_lm_prob_0.15_random_seed_12345_"
             "dupe_factor_5_shard_1_test_split_10" / "pubmed_baseline")
    tfrec.mkdir(parents=True)
    (tfrec / "training").symlink_to(records[2]["train"])
    (tfrec / "test").symlink_to(records[2]["test"])
    model = modeling.build(modeling.BertPretrainer(BertConfig.from_json_file(str(records["config"]))))
    return data, checkpoints.save_checkpoint(str(tmp_path / "init"), 0, modeling.variable_map(model))


def test_sbatch_run_biobert_sub_pretrains_on_two_tasks(slurm, records, tmp_path):
    """The original's cluster launch, `PHASE=1 ... sbatch -N1 --ntasks-per-node=2 run_biobert.sub`, on a tiny
    BERT with records of the real PubMed sample laid out in the folders the script expects."""
    from biobert import checkpoints

    data, init = pretraining_job_folders(records, tmp_path)
    results = tmp_path / "results"
    env = quiet_env(SLURM_CONF=slurm.env["SLURM_CONF"], BIOBERT_PORT_BASE=str(free_port_base(2)), PHASE="1",
                    BATCHSIZE="4", LEARNING_RATE="1e-3", NUM_ACCUMULATION_STEPS="2", TRAIN_STEPS="6",
                    WARMUP_STEPS="2", DATADIR=str(data), CHECKPOINTDIR=str(results), NUM_SHARDS="1",
                    PYTHON=sys.executable, INIT_CHECKPOINT=init)
    log = tmp_path / "job.out"
    proc = subprocess.run(["sbatch", "--wait", "-N1", "--ntasks-per-node=2", f"--output={log}",
                           "biobert/scripts/run_biobert.sub"], capture_output=True, text=True, timeout=900,
                          cwd=REPO, env=env)
    text = log.read_text() if log.exists() else ""
    assert proc.returncode == 0, proc.stdout + proc.stderr + text + slurm.logs()
    assert text.count("MultiWorkerMirroredStrategy over 2 workers; 2 replica(s)") == 1, text
    assert "running the same launch on tf.distribute" in text
    out = results / "biobert_phase_1"
    figures = dict(line.strip().split(" = ") for line in open(out / "eval_results.txt"))
    assert int(figures["global_step"]) == 6 and figures["eval_steps"] == figures["before_eval_steps"]
    # six steps of the two-task run lower the held-out masked-LM loss measured on the same records before them
    assert float(figures["masked_lm_loss"]) < float(figures["before_masked_lm_loss"]), figures
    assert checkpoints.latest_checkpoint(str(out)).endswith("-6")


def test_tasks_per_node_and_local_rank(monkeypatch):
    assert distribution._expand_tasks_per_node("2(x3),1") == [2, 2, 2, 1]
    assert distribution._expand_tasks_per_node("16") == [16]
    for name in list(os.environ):
        if name.startswith(("OMPI_", "SLURM_")):
            monkeypatch.delenv(name)
    assert distribution.local_process() == (0, 1)
    monkeypatch.setenv("SLURM_PROCID", "5")
    monkeypatch.setenv("SLURM_STEP_NUM_TASKS", "7")
    monkeypatch.setenv("SLURM_STEP_TASKS_PER_NODE", "2(x3),1")
    monkeypatch.setenv("SLURM_NODEID", "2")
    monkeypatch.setenv("SLURM_LOCALID", "1")
    assert distribution._launch() == "slurm" and distribution.local_process() == (1, 2)
    # mpirun inside an sbatch allocation inherits the batch step's SLURM_* variables: Open MPI's win.
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "4")
    monkeypatch.setenv("OMPI_COMM_WORLD_RANK", "3")
    monkeypatch.setenv("OMPI_COMM_WORLD_LOCAL_RANK", "3")
    monkeypatch.setenv("OMPI_COMM_WORLD_LOCAL_SIZE", "4")
    assert distribution._launch() == "mpirun" and distribution.local_process() == (3, 4)
    assert distribution._mpirun_tf_config()["task"] == {"type": "worker", "index": 3}


def test_several_processes_on_a_node_take_one_gpu_each(monkeypatch):
    """mpirun -np 2 on a 2-GPU node: rank 1 sees only GPU 1 (as Horovod's local_rank pinning); one process
    keeps every GPU for MirroredStrategy. (No GPU here: TensorFlow's device call is recorded, not made.)"""
    calls = []
    monkeypatch.setattr(distribution.tf.config, "set_visible_devices", lambda d, kind: calls.append((d, kind)))
    for name in list(os.environ):
        if name.startswith(("OMPI_", "SLURM_")):
            monkeypatch.delenv(name)
    notes = []
    assert distribution._pin_gpu(["gpu0", "gpu1"], notes) == ["gpu0", "gpu1"] and calls == []
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "2")
    monkeypatch.setenv("OMPI_COMM_WORLD_LOCAL_SIZE", "2")
    monkeypatch.setenv("OMPI_COMM_WORLD_LOCAL_RANK", "1")
    assert distribution._pin_gpu(["gpu0", "gpu1"], notes) == ["gpu1"]
    assert calls == [(["gpu1"], "GPU")] and notes == []
    assert distribution._pin_gpu(["gpu0"], notes) == ["gpu0"] and "2 processes on this node share 1 GPU" in notes[0]
    assert distribution._pin_gpu([], notes) == []


# A Python for the job's tasks whose chief takes SLOW_SAVE_SECONDS longer over the checkpoint of step
# SLOW_SAVE_STEP, after writing SLOW_SAVE_MARKER (so a test can signal the job while the chief writes).
SLOW_SAVE_PYTHON = textwrap.dedent('''\
    #!/bin/bash
    exec "{python}" - "$@" <<'PY'
    import os, runpy, sys, time
    sys.path.insert(0, "{repo}")
    from biobert import checkpoints
    real_save = checkpoints.save_checkpoint

    def slow_save(directory, step, *args, **kwargs):
        if int(step) == int(os.environ["SLOW_SAVE_STEP"]):
            with open(os.environ["SLOW_SAVE_MARKER"], "w") as marker:
                marker.write(str(step))
            time.sleep(float(os.environ["SLOW_SAVE_SECONDS"]))
        return real_save(directory, step, *args, **kwargs)

    checkpoints.save_checkpoint = slow_save
    sys.argv = sys.argv[1:]
    runpy.run_path(sys.argv[0], run_name="__main__")
    PY
''')


@pytest.mark.parametrize("moment", ["while it trains", "while the chief writes a checkpoint"])
def test_sbatch_job_signalled_before_its_end_requeues_itself_and_completes(slurm, records, tmp_path, moment):
    """USR1 (what `#SBATCH --signal=USR1@120` sends before the time limit) to a running run_biobert.sub job: the
    two tasks checkpoint the same step and exit 75, the job requeues itself, resumes there and completes. A signal
    that lands while the chief writes the checkpoint of step 5 (slowed down here) stops both tasks there, once the
    checkpoint is complete and named in the state file."""
    import re
    import time

    data, init = pretraining_job_folders(records, tmp_path)
    results = tmp_path / "results"
    marker = tmp_path / "saving"
    python = tmp_path / "python"
    python.write_text(SLOW_SAVE_PYTHON.format(python=sys.executable, repo=REPO))
    python.chmod(0o755)
    env = quiet_env(SLURM_CONF=slurm.env["SLURM_CONF"], PHASE="1", BATCHSIZE="4", LEARNING_RATE="1e-3",
                    NUM_ACCUMULATION_STEPS="1", TRAIN_STEPS="40", WARMUP_STEPS="2", DATADIR=str(data),
                    CHECKPOINTDIR=str(results), NUM_SHARDS="1", PYTHON=str(python), INIT_CHECKPOINT=init,
                    SAVE_CHECKPOINTS_STEPS="5", SLOW_SAVE_STEP="5", SLOW_SAVE_MARKER=str(marker),
                    SLOW_SAVE_SECONDS="8" if moment.endswith("checkpoint") else "0")
    log = tmp_path / "job.out"
    submitted = subprocess.run(["sbatch", "--parsable", "-N1", "--ntasks-per-node=2", f"--output={log}",
                                "--open-mode=append", "biobert/scripts/run_biobert.sub"], capture_output=True,
                               text=True, timeout=60, cwd=REPO, env=env)
    assert submitted.returncode == 0, submitted.stderr
    job = submitted.stdout.strip().split(";")[0]

    def state():
        out = subprocess.run(["scontrol", "show", "job", job], capture_output=True, text=True, env=env).stdout
        match = re.search(r"JobState=(\w+)", out)
        return match.group(1) if match else "GONE"

    def text():
        return log.read_text(errors="replace") if log.exists() else ""

    deadline = time.time() + 600
    if moment.endswith("checkpoint"):
        while time.time() < deadline and not marker.exists():
            assert state() in ("PENDING", "RUNNING", "CONFIGURING"), text() + slurm.logs()
            time.sleep(0.2)
    else:
        while time.time() < deadline and not re.search(r"step (1[1-9]|2[0-9])/40", text()):
            assert state() in ("PENDING", "RUNNING", "CONFIGURING"), text() + slurm.logs()
            time.sleep(1)
    signalled = subprocess.run(["scancel", "--signal=USR1", job], capture_output=True, text=True, env=env)
    assert signalled.returncode == 0, signalled.stderr
    released = False
    while time.time() < deadline and state() not in ("COMPLETED", "FAILED", "CANCELLED", "GONE"):
        if not released and state() == "PENDING":
            # Slurm makes a requeued job eligible again only about 2 minutes later (Reason=BeginTime); as an
            # administrator would, start it sooner. Not within the requeue's second: slurmd rejects a job's
            # credential issued in the second its previous one was revoked ("Job credential revoked").
            subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now+5"], capture_output=True, env=env)
            released = True
        time.sleep(1)
    output = text()
    assert state() == "COMPLETED", output + slurm.logs()
    steps = {int(s) for s in re.findall(r"preempted: stopped on \S+ .*?after saving a checkpoint at step (\d+)",
                                        output)}
    assert len(steps) == 1, output                      # both tasks, the same step
    step = steps.pop()
    if moment.endswith("checkpoint"):
        assert step == 5, output
    assert len(re.findall(r"preempted: stopped on", output)) == 2, output
    assert "requeueing job" in output
    assert re.search(rf"resuming from \S+model.ckpt-{step} at step {step}", output), output
    out = results / "biobert_phase_1"
    figures = dict(line.strip().split(" = ") for line in open(out / "eval_results.txt"))
    assert int(figures["global_step"]) == 40
