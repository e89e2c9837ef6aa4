"""The loop under a real multi-replica strategy: MirroredStrategy over two logical CPU devices (a subprocess)."""
import os
import subprocess
import sys
import textwrap

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

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
    from helpers import token_task

    feats, loss_fn, config = token_task()
    results = {}
    # One strategy object per device count (collective instance keys count per strategy object).
    strategies = {1: tf.distribute.OneDeviceStrategy("/cpu:0"), 2: tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])}
    # Clipping by global norm on (0.05 is well under this task's gradient norms, so every step is clipped);
    # whole batches, and batches as tuples of 2 length-sorted parts (run_re.py's plain shuffle); accumulation of
    # 2 micro-batches with one all-reduce per step or one per micro-batch.
    for name, parts, accum, post, clip, devices in (
            ("one", 1, 1, True, 0.05, 1), ("two", 1, 1, True, 0.05, 2),
            ("one-parts", 2, 1, True, 0.05, 1), ("two-parts", 2, 1, True, 0.05, 2),
            ("two-accum", 1, 2, True, 0.05, 2), ("two-accum-each", 1, 2, False, 0.05, 2),
            ("one-accum", 1, 2, True, 0.05, 1), ("one-unclipped", 1, 1, True, 0.0, 1)):
        strategy = strategies[devices]
        runtime = distribution.Runtime(strategy=strategy, num_replicas=strategy.num_replicas_in_sync,
                                       num_workers=1, worker_index=0, device="cpu", policy="float32",
                                       loss_scaling=False, description=name)
        keras.utils.set_random_seed(3)
        # 1e-3 per replica: the one-device runs get the two-replica runs' rate by hand.
        cfg = training.TrainConfig(output_dir=tempfile.mkdtemp(), learning_rate=1e-3 * devices ** -1 * 2,
                                   num_train_steps=4, clip_norm=clip, display_loss_steps=1, save_checkpoints_steps=0,
                                   num_accumulation_steps=accum, allreduce_post_accumulation=post, use_xla=False)
        trainer = training.Trainer(runtime, lambda: modeling.BertClassifier(config, 4, per_token=True), loss_fn,
                                   cfg, RunLog(None, enabled=False))
        batches = batching.training_batches(feats, 16 // accum, 8, seed=1, sort_window=1, parts=parts)
        trainer.fit(batches)
        results[name] = {n: v.numpy() for n, v in trainer.variables.items()}
        print(name, strategy.num_replicas_in_sync, int(trainer.global_step.numpy()), "peak", trainer.peak_learning_rate)
    # (Equal lengths, so the token mean is a row mean and the parts give the whole batches' result too.)
    def worst(a, b):
        return max(float(np.abs(results[a][n] - results[b][n]).max()) for n in results[a])
    for a, b in (("one", "two"), ("one-parts", "two-parts"), ("one", "one-parts"), ("one-accum", "two-accum"),
                 ("one-accum", "two-accum-each")):
        print(a, b, "max difference", worst(a, b))
        assert worst(a, b) < 1e-5, (a, b, worst(a, b))
    print("clipping moves the weights by", worst("one", "one-unclipped"))
    assert worst("one", "one-unclipped") > 1e-3
''')


def test_mirrored_two_replicas_train_like_one_device(tmp_path):
    """Each replica takes half of every global batch; gradients are combined before clipping by global norm, so
    two replicas give the one-device result with clipping on, also when accumulating micro-batches."""
    script = tmp_path / "mirrored.py"
    script.write_text(SCRIPT)
    proc = subprocess.run([sys.executable, str(script), REPO], capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "one 1 4 peak 0.002" in proc.stdout and "two 2 4 peak 0.002" in proc.stdout
    assert "two-parts 2 4" in proc.stdout and "two-accum 2 4" in proc.stdout


def test_horovod_flag_falls_back_to_tf_distribute():
    from biobert import distribution

    lines = []
    runtime = distribution.setup(horovod=True, log=lines.append)
    assert runtime.num_replicas == 1 and runtime.is_chief
    assert any("Horovod is not installed" in line and "tf.distribute" in line for line in lines)
    assert "running on one process" in lines


X86_WITH = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 avx512_vnni\n"
X86_WITHOUT = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512bw avx512_vnni\n\nprocessor\t: 1\nflags\t\t: fpu\n"
X86_AMX = "flags\t\t: fpu avx512f amx_bf16 amx_tile amx_int8\n"
ARM_WITH = "processor\t: 0\nFeatures\t: fp asimd evtstrm aes sve bf16 i8mm\nCPU implementer\t: 0x41\n"
ARM_WITHOUT = "processor\t: 0\nFeatures\t: fp asimd evtstrm aes sve\n"


def test_cpu_bfloat16_support_reads_the_cpu_flags(tmp_path):
    from biobert import distribution

    expected = {"x86_with": (X86_WITH, True), "x86_without": (X86_WITHOUT, False), "amx": (X86_AMX, True),
                "arm_with": (ARM_WITH, True), "arm_without": (ARM_WITHOUT, False)}
    for name, (text, native) in expected.items():
        (tmp_path / name).write_text(text)
        assert distribution.cpu_bfloat16_support(str(tmp_path / name)) is native, name
    assert distribution.cpu_bfloat16_support(str(tmp_path / "absent")) is None


def test_amp_on_a_cpu_without_bfloat16_runs_in_float32(monkeypatch):
    from biobert import distribution
    from biobert.errors import InputError

    native = {"value": False}
    monkeypatch.setattr(distribution, "cpu_bfloat16_support", lambda: native["value"])
    monkeypatch.delenv("BIOBERT_CPU_BF16", raising=False)
    lines = []
    runtime = distribution.setup(amp=True, log=lines.append)
    assert runtime.matmul_dtype is None and runtime.precision == "float32"
    assert any("no bfloat16 arithmetic" in line and "float32" in line for line in lines)
    native["value"] = True
    assert distribution.setup(amp=True, log=lines.append).matmul_dtype == "bfloat16"
    native["value"] = None                        # cannot tell (not Linux): --amp keeps bfloat16 products
    assert distribution.setup(amp=True, log=lines.append).matmul_dtype == "bfloat16"
    assert distribution.setup(amp=False, log=lines.append).matmul_dtype is None
    # The environment overrides the detection either way; a value that is not a switch is a clear error.
    native["value"] = False
    monkeypatch.setenv("BIOBERT_CPU_BF16", "1")
    assert distribution.setup(amp=True, log=lines.append).matmul_dtype == "bfloat16"
    native["value"] = True
    monkeypatch.setenv("BIOBERT_CPU_BF16", "0")
    assert distribution.setup(amp=True, log=lines.append).matmul_dtype is None
    monkeypatch.setenv("BIOBERT_CPU_BF16", "maybe")
    with pytest.raises(InputError, match="BIOBERT_CPU_BF16='maybe'"):
        distribution.setup(amp=True, log=lines.append)


def test_mpirun_environment_becomes_tf_config(monkeypatch):
    from biobert import distribution

    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "2")
    monkeypatch.setenv("OMPI_COMM_WORLD_LOCAL_SIZE", "2")
    monkeypatch.setenv("OMPI_COMM_WORLD_RANK", "1")
    config = distribution._mpirun_tf_config()
    assert config == {"cluster": {"worker": ["localhost:23456", "localhost:23457"]},
                      "task": {"type": "worker", "index": 1}}
    monkeypatch.setenv("OMPI_COMM_WORLD_LOCAL_SIZE", "1")
    import pytest

    with pytest.raises(RuntimeError, match="several nodes"):
        distribution._mpirun_tf_config()
