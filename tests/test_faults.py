"""Long runs under faults: preemption signals, damaged checkpoints, a full disk; TensorBoard curves."""
import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def ner_args(s, out, **extra):
    args = {"data_dir": s["data"], "bert_config_file": s["config"], "vocab_file": s["vocab"], "output_dir": out,
            "dllog_path": os.path.join(out, "dllog.json"), "train_batch_size": 16, "learning_rate": 3e-3,
            "iterations_per_loop": 1, "save_checkpoints_steps": 1000, "nouse_xla": None}
    args.update(extra)
    return [f"--{k}" if v is None else f"--{k}={v}" for k, v in args.items()]


def logged_steps(path):
    rows = [json.loads(line[5:]) for line in open(path, encoding="utf-8") if line.startswith("DLLL ")]
    return [r["step"] for r in rows if isinstance(r.get("data"), dict) and "loss" in r["data"]]


@pytest.mark.parametrize("signal_name", ["SIGTERM", "SIGUSR1"])
def test_preemption_signal_checkpoints_the_current_step_and_the_rerun_finishes(ner_slice, tmp_path, signal_name):
    out = str(tmp_path / "run")
    args = [sys.executable, os.path.join(REPO, "run_ner.py"), "--do_train"] + ner_args(ner_slice, out,
                                                                                       num_train_epochs=12)
    proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    log = os.path.join(out, "dllog.json")
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:      # mid-epoch, after a few steps
        if os.path.exists(log) and len(logged_steps(log)) >= 4:
            break
        time.sleep(0.2)
    assert proc.poll() is None, "the run ended before the signal"
    proc.send_signal(getattr(signal, signal_name))
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 75, stdout + stderr
    match = re.search(rf"preempted: stopped on {signal_name} after saving a checkpoint at step (\d+)", stderr)
    assert match, stderr
    step = int(match.group(1))
    total = 12 * ner_slice["steps_per_epoch"]
    assert 4 <= step < total
    assert os.path.exists(os.path.join(out, f"model.ckpt-{step}.index"))
    assert max(logged_steps(log)) == step           # no step beyond the checkpoint was trained
    if signal_name != "SIGTERM":
        return
    # The same command resumes at that step and finishes.
    again = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=600,
                           env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"at step {step}" in again.stdout
    assert os.path.exists(os.path.join(out, f"model.ckpt-{total}.index"))


def make_trainer(tmp_path, steps=4, save=1):
    import keras
    import tensorflow as tf
    from helpers import token_task

    from biobert import distribution, modeling, training
    from biobert.dllogger import RunLog

    feats, loss_fn, config = token_task()
    runtime = distribution.Runtime(strategy=tf.distribute.get_strategy(), num_replicas=1, num_workers=1,
                                   worker_index=0, device="cpu", policy="float32", loss_scaling=False,
                                   description="one")
    keras.utils.set_random_seed(3)
    lines = []
    log = RunLog(str(tmp_path / "dllog.json"), enabled=True, stream=None)
    log.info = lines.append
    cfg = training.TrainConfig(output_dir=str(tmp_path), learning_rate=1e-3, num_train_steps=steps,
                               save_checkpoints_steps=save, display_loss_steps=1, use_xla=False)
    trainer = training.Trainer(runtime, lambda: modeling.BertClassifier(config, 4, per_token=True), loss_fn, cfg,
                               log)
    trainer.lines = lines
    return trainer, feats


def test_a_damaged_newest_checkpoint_falls_back_to_the_previous_one(tmp_path):
    from biobert import batching, checkpoints

    trainer, feats = make_trainer(tmp_path, steps=3)
    trainer.fit(batching.training_batches(feats, 16, 8, seed=1))
    assert [os.path.basename(p) for p in checkpoints.list_checkpoints(str(tmp_path))] == ["model.ckpt-2",
                                                                                          "model.ckpt-3"]
    weights_at_2 = None
    data = tmp_path / "model.ckpt-3.data-00000-of-00001"
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])        # truncated (a dying process, a full disk)
    again, _ = make_trainer(tmp_path, steps=3)
    assert again.restore_latest() == 2
    assert any("model.ckpt-3 cannot be read" in line and "trying the one before" in line for line in again.lines)
    weights_at_2 = again.variables["output_weights"].numpy()
    assert np.isfinite(weights_at_2).all()


def test_a_full_disk_during_a_checkpoint_leaves_the_previous_one(tmp_path, monkeypatch):
    import tensorflow as tf

    from biobert import batching, checkpoints
    from biobert.errors import InputError

    trainer, feats = make_trainer(tmp_path, steps=2, save=0)
    trainer.fit(batching.training_batches(feats, 16, 8, seed=1))          # model.ckpt-2
    saved = trainer.variables["output_weights"].numpy()
    state = (tmp_path / "checkpoint").read_text()
    real_save = tf.raw_ops.SaveV2

    def full_disk(prefix, **kwargs):
        real_save(prefix=prefix, **kwargs)                                   # half the bytes reach the disk...
        for name in os.listdir(tmp_path):
            if name.startswith(".tmp-") and name.endswith(".data-00000-of-00001"):
                path = tmp_path / name
                path.write_bytes(path.read_bytes()[:10])
        raise tf.errors.ResourceExhaustedError(None, None, "No space left on device")    # ...then ENOSPC

    monkeypatch.setattr(tf.raw_ops, "SaveV2", full_disk)
    trainer.global_step.assign(3)
    with pytest.raises(InputError, match="cannot write the checkpoint for step 3 .No space left on device.; the "
                                         "previous checkpoint is intact"):
        trainer.save()
    monkeypatch.undo()
    assert (tmp_path / "checkpoint").read_text() == state
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".tmp-")]
    assert [os.path.basename(p) for p in checkpoints.list_checkpoints(str(tmp_path))] == ["model.ckpt-2"]
    again, _ = make_trainer(tmp_path, steps=2)
    assert again.restore_latest() == 2
    np.testing.assert_array_equal(again.variables["output_weights"].numpy(), saved)


def test_tensorboard_events_hold_every_logged_scalar(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from biobert import batching

    trainer, feats = make_trainer(tmp_path, steps=5, save=0)
    trainer.fit(batching.training_batches(feats, 16, 8, seed=1))
    import tensorflow as tf

    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    tags = events.Tags()["tensors"]               # TF2 summaries are scalar tensors with the scalars plugin
    assert {"train/loss", "train/learning_rate", "train/throughput_train"} <= set(tags)
    assert [e.step for e in events.Tensors("train/loss")] == [1, 2, 3, 4, 5]
    losses = [float(tf.make_ndarray(e.tensor_proto)) for e in events.Tensors("train/loss")]
    logged = [json.loads(line[5:])["data"]["loss"] for line in open(tmp_path / "dllog.json")
              if line.startswith("DLLL ") and "loss" in line]
    np.testing.assert_allclose(losses, logged, rtol=1e-6)


@pytest.mark.parametrize("state_file", ["deleted", "names a deleted checkpoint"])
def test_a_run_without_a_usable_state_file_resumes_and_keeps_the_restored_weights(tmp_path, state_file):
    """The bundles on disk are what a run resumes from: with the ``checkpoint`` state file gone (or naming a bundle
    the user removed), the newest bundle is restored, and --init_checkpoint does not overwrite its weights."""
    import tensorflow as tf

    from biobert import batching, checkpoints

    trainer, feats = make_trainer(tmp_path, steps=2, save=0)
    trainer.fit(batching.training_batches(feats, 16, 8, seed=1))          # model.ckpt-2
    saved = {name: var.numpy() for name, var in trainer.variables.items()}
    other = {name: value + 0.5 for name, value in saved.items()}          # an initial checkpoint, other weights
    init = checkpoints.save_checkpoint(str(tmp_path / "init"), 0, other)
    if state_file == "deleted":
        (tmp_path / "checkpoint").unlink()
    else:
        (tmp_path / "checkpoint").write_text('model_checkpoint_path: "model.ckpt-9"\n'
                                             'all_model_checkpoint_paths: "model.ckpt-9"\n')
        assert tf.train.latest_checkpoint(str(tmp_path)) is None or "ckpt-9" in tf.train.latest_checkpoint(
            str(tmp_path))
    # The folder as --init_checkpoint of another run (or evaluated) names the same checkpoint.
    assert checkpoints.resolve_tf_checkpoint(str(tmp_path)) == str(tmp_path / "model.ckpt-2")
    again, _ = make_trainer(tmp_path, steps=4)
    assert again.restore_or_initialise(init) == 2
    assert again.resumed_from == str(tmp_path / "model.ckpt-2")
    assert not any("loaded" in line for line in again.lines)
    for name, var in again.variables.items():
        np.testing.assert_array_equal(var.numpy(), saved[name], err_msg=name)
    (tmp_path / "fresh").mkdir()
    fresh, _ = make_trainer(tmp_path / "fresh", steps=4)                   # nothing to resume: the initial weights
    assert fresh.restore_or_initialise(init) == 0 and fresh.resumed_from is None
    np.testing.assert_array_equal(fresh.variables["output_weights"].numpy(), other["output_weights"])
