"""Which distribution strategy, precision and XLA setting a run uses, decided once at start-up.

* one process, one or no GPU: the default strategy; one process, several GPUs: MirroredStrategy;
* several processes: MultiWorkerMirroredStrategy, with the cluster taken from TF_CONFIG, from Slurm (srun,
  SlurmClusterResolver), or from an ``mpirun`` launch on one node (Open MPI's OMPI_COMM_WORLD_* variables);
* ``--horovod``: Horovod does not build against TensorFlow 2.21, so the same launch runs on tf.distribute
  and the log says so.
Precision: ``--amp`` means mixed_float16 with dynamic loss scaling on GPUs, mixed_bfloat16 on CPUs.
"""
import dataclasses
import json
import os

import keras
import tensorflow as tf


@dataclasses.dataclass
class Runtime:
    strategy: tf.distribute.Strategy
    num_replicas: int
    num_workers: int
    worker_index: int
    device: str              # "gpu" or "cpu"
    policy: str              # keras dtype policy name
    loss_scaling: bool       # dynamic loss scaling (float16 only)
    description: str

    @property
    def is_chief(self):
        return self.worker_index == 0


def _mpirun_tf_config():
    """TF_CONFIG for an Open MPI launch whose ranks all run on this node, or None when not under mpirun."""
    size = int(os.environ.get("OMPI_COMM_WORLD_SIZE", "1"))
    if size <= 1:
        return None
    local = int(os.environ.get("OMPI_COMM_WORLD_LOCAL_SIZE", str(size)))
    if local != size:
        raise RuntimeError("mpirun across several nodes needs TF_CONFIG (or launch with srun under Slurm); "
                           "this launch only derives the cluster for ranks on one node")
    rank = int(os.environ["OMPI_COMM_WORLD_RANK"])
    base = int(os.environ.get("BIOBERT_PORT_BASE", "23456"))
    workers = [f"localhost:{base + r}" for r in range(size)]
    return {"cluster": {"worker": workers}, "task": {"type": "worker", "index": rank}}


def _multi_worker_resolver():
    """A cluster resolver when this process is one of several workers, else None."""
    if "TF_CONFIG" in os.environ:
        config = json.loads(os.environ["TF_CONFIG"])
        if len(config.get("cluster", {}).get("worker", [])) > 1:
            return tf.distribute.cluster_resolver.TFConfigClusterResolver()
        return None
    tasks = int(os.environ.get("SLURM_STEP_NUM_TASKS", os.environ.get("SLURM_NTASKS", "1")))
    if tasks > 1 and "SLURM_PROCID" in os.environ:
        gpus = len(tf.config.list_physical_devices("GPU"))
        return tf.distribute.cluster_resolver.SlurmClusterResolver(
            port_base=int(os.environ.get("BIOBERT_PORT_BASE", "23456")), gpus_per_node=gpus,
            gpus_per_task=1 if gpus else 0)
    config = _mpirun_tf_config()
    if config is not None:
        os.environ["TF_CONFIG"] = json.dumps(config)
        return tf.distribute.cluster_resolver.TFConfigClusterResolver()
    return None


def setup(amp=False, use_xla=False, horovod=False, log=print):
    """Pick the strategy and the precision policy; call before any model is built."""
    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:
            pass
    notes = []
    if horovod:
        try:
            import horovod.tensorflow  # noqa: F401
            notes.append("Horovod is importable, but this port distributes with tf.distribute; "
                         "the mpirun/srun launch maps onto MultiWorkerMirroredStrategy")
        except ImportError:
            notes.append("--horovod: Horovod is not installed (it does not build against TensorFlow 2.21); "
                         "running the same launch on tf.distribute instead")
    resolver = _multi_worker_resolver()
    if resolver is not None:
        strategy = tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=resolver)
        task = resolver.task_id or 0
        workers = len(resolver.cluster_spec().as_dict().get("worker", [])) or 1
        kind = f"MultiWorkerMirroredStrategy over {workers} workers"
    elif len(gpus) > 1:
        strategy = tf.distribute.MirroredStrategy()
        task, workers = 0, 1
        kind = f"MirroredStrategy over {len(gpus)} GPUs"
    else:
        strategy = tf.distribute.get_strategy()
        task, workers = 0, 1
        kind = "one process, one device (" + ("GPU" if gpus else "CPU") + ")"
    device = "gpu" if gpus else "cpu"
    if amp:
        policy = "mixed_float16" if device == "gpu" else "mixed_bfloat16"
    else:
        policy = "float32"
    keras.mixed_precision.set_dtype_policy(policy)
    description = (f"{kind}; {strategy.num_replicas_in_sync} replica(s); precision {policy}"
                   + ("; XLA jit_compile on" if use_xla else "; XLA off"))
    if horovod and workers == 1:
        notes.append("running on one process")
    runtime = Runtime(strategy=strategy, num_replicas=strategy.num_replicas_in_sync, num_workers=workers,
                      worker_index=task, device=device, policy=policy,
                      loss_scaling=policy == "mixed_float16", description=description)
    if runtime.is_chief:
        for note in notes:
            log(note)
        log(description)
    return runtime
