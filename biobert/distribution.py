"""Which distribution strategy, precision and XLA setting a run uses, decided once at start-up.

* one process, one or no GPU: the default strategy; one process, several GPUs: MirroredStrategy;
* several processes: MultiWorkerMirroredStrategy, with the cluster taken from TF_CONFIG, from Slurm (srun,
  SlurmClusterResolver), or from an ``mpirun`` launch on one node (Open MPI's OMPI_COMM_WORLD_* variables);
  when an mpirun/srun launch puts several processes on a node, each takes the GPU of its local rank, as the
  original's Horovod processes did (TF_CONFIG launches set CUDA_VISIBLE_DEVICES themselves);
* ``--horovod``: Horovod does not build against TensorFlow 2.21, so the same launch runs on tf.distribute
  and the log says so.
Precision: ``--amp`` means mixed_float16 with dynamic loss scaling on GPUs; on CPUs that multiply bfloat16 in
hardware (x86 AVX512_BF16 or AMX, Arm BF16), bfloat16 matrix products in an otherwise float32 model
(Runtime.matmul_dtype, which the job passes to modeling.set_matmul_dtype), faster and closer to float32 on a
CPU than Keras's mixed_bfloat16 policy.
On other CPUs bfloat16 is emulated and several times slower than float32, so ``--amp`` runs in float32 there
and the log says so; BIOBERT_CPU_BF16=1 (or 0) overrides the detection.
"""
import dataclasses
import hashlib
import json
import os

import keras
import tensorflow as tf

from biobert.errors import InputError


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
    matmul_dtype: str = None  # dtype of the matrix products when not the policy's compute dtype
    collective_timeout: float = None  # seconds a multi-worker step may wait for its peers (None: no limit)

    @property
    def is_chief(self):
        return self.worker_index == 0

    @property
    def precision(self):
        return _precision_name(self.policy, self.matmul_dtype)


def _precision_name(policy, matmul_dtype):
    """The precision as the log names it: the policy, or the products' dtype in a float32 model."""
    return f"{matmul_dtype} matmuls, float32 elsewhere" if matmul_dtype else policy


CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")     # x86 (/proc/cpuinfo "flags"), Arm ("Features")


def cpu_bfloat16_support(cpuinfo="/proc/cpuinfo"):
    """True/False: the CPU multiplies bfloat16 in hardware (its flags name AVX512_BF16, AMX-BF16 or Arm's BF16);
    None when ``cpuinfo`` cannot be read (not Linux)."""
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError:
        return None
    flags = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            flags.update(value.split())
    return any(flag in flags for flag in CPU_BF16_FLAGS)


def _cpu_bf16(cpu_bf16, notes):
    """Whether --amp on a CPU uses bfloat16 products: ``cpu_bf16`` if given, else BIOBERT_CPU_BF16, else detected."""
    if cpu_bf16 is not None:
        return bool(cpu_bf16)
    forced = os.environ.get("BIOBERT_CPU_BF16", "").strip().lower()
    if forced in ("1", "true", "yes"):
        return True
    if forced in ("0", "false", "no"):
        return False
    if forced:
        raise InputError(f"BIOBERT_CPU_BF16={forced!r}: use 1 or 0 (or leave it unset to detect)")
    native = cpu_bfloat16_support()
    if native is False:
        notes.append("--amp: this CPU has no bfloat16 arithmetic (no avx512_bf16/amx_bf16/bf16 flag), where "
                     "bfloat16 products are emulated and several times slower, so the run is in float32 "
                     "(BIOBERT_CPU_BF16=1 forces bfloat16)")
    return native is not False


JOB_ID_VARIABLES = ("SLURM_JOB_ID", "PMIX_NAMESPACE", "OMPI_MCA_ess_base_jobid", "OMPI_MCA_orte_hnp_uri")
PORT_BLOCKS, PORT_BLOCK, FIRST_PORT = 350, 64, 10000     # ports 10000-32399: below Linux's ephemeral range


def _collective_timeout():
    value = os.environ.get("BIOBERT_COLLECTIVE_TIMEOUT", "120").strip()
    try:
        seconds = float(value)
    except ValueError:
        raise InputError(f"BIOBERT_COLLECTIVE_TIMEOUT={value!r}: give seconds (0 waits forever)") from None
    return seconds if seconds > 0 else None


def _port_base():
    """The first port of this launch's workers on a node: BIOBERT_PORT_BASE if set, else a block of 64 ports
    chosen by the launch's job id (Slurm's job and step, Open MPI's job), so that two jobs sharing a node do not
    collide (one chance in 350 that two given jobs do)."""
    if os.environ.get("BIOBERT_PORT_BASE"):
        return int(os.environ["BIOBERT_PORT_BASE"])
    for name in JOB_ID_VARIABLES:
        job = os.environ.get(name)
        if job:
            if name == "SLURM_JOB_ID":
                job += "." + os.environ.get("SLURM_STEP_ID", "")
            digest = int(hashlib.sha256(job.encode()).hexdigest(), 16)
            return FIRST_PORT + digest % PORT_BLOCKS * PORT_BLOCK
    return 23456


def _expand_tasks_per_node(value):
    """Slurm's tasks-per-node list ("2(x3),1") -> [2, 2, 2, 1]."""
    counts = []
    for part in value.split(","):
        if "(x" in part:
            count, repeat = part.rstrip(")").split("(x")
            counts += [int(count)] * int(repeat)
        elif part:
            counts.append(int(part))
    return counts


def _launch():
    """How this process was started: "mpirun", "slurm" (srun with several tasks) or None (one process).

    Open MPI's variables win: an ``mpirun`` inside an ``sbatch`` allocation also inherits the batch step's
    SLURM_* variables, which describe the allocation, not this process.
    """
    if int(os.environ.get("OMPI_COMM_WORLD_SIZE", "1")) > 1:
        return "mpirun"
    tasks = int(os.environ.get("SLURM_STEP_NUM_TASKS", os.environ.get("SLURM_NTASKS", "1")))
    if tasks > 1 and "SLURM_PROCID" in os.environ and "SLURM_STEP_TASKS_PER_NODE" in os.environ:
        return "slurm"
    return None


def local_process():
    """(rank of this process on its node, processes on its node) for mpirun/srun launches, else (0, 1)."""
    launch = _launch()
    if launch == "mpirun":
        return (int(os.environ.get("OMPI_COMM_WORLD_LOCAL_RANK", "0")),
                int(os.environ.get("OMPI_COMM_WORLD_LOCAL_SIZE", os.environ["OMPI_COMM_WORLD_SIZE"])))
    if launch == "slurm":
        per_node = _expand_tasks_per_node(os.environ["SLURM_STEP_TASKS_PER_NODE"])
        node = int(os.environ.get("SLURM_NODEID", "0"))
        return int(os.environ.get("SLURM_LOCALID", "0")), per_node[min(node, len(per_node) - 1)]
    return 0, 1


def _mpirun_tf_config():
    """TF_CONFIG for an Open MPI launch whose ranks all run on this node, or None when not under mpirun."""
    if _launch() != "mpirun":
        return None
    size = int(os.environ["OMPI_COMM_WORLD_SIZE"])
    local = int(os.environ.get("OMPI_COMM_WORLD_LOCAL_SIZE", str(size)))
    if local != size:
        raise RuntimeError("mpirun across several nodes needs TF_CONFIG (or launch with srun under Slurm); "
                           "this launch only derives the cluster for ranks on one node")
    rank = int(os.environ["OMPI_COMM_WORLD_RANK"])
    workers = [f"localhost:{_port_base() + r}" for r in range(size)]
    return {"cluster": {"worker": workers}, "task": {"type": "worker", "index": rank}}


def _multi_worker_resolver(num_gpus):
    """A cluster resolver when this process is one of several workers, else None.

    ``num_gpus``: the GPUs this process sees after pinning, i.e. its replicas (0 = one CPU replica).
    """
    if "TF_CONFIG" in os.environ:
        config = json.loads(os.environ["TF_CONFIG"])
        if len(config.get("cluster", {}).get("worker", [])) > 1:
            return tf.distribute.cluster_resolver.TFConfigClusterResolver()
        return None
    launch = _launch()
    if launch == "mpirun":
        os.environ["TF_CONFIG"] = json.dumps(_mpirun_tf_config())
        return tf.distribute.cluster_resolver.TFConfigClusterResolver()
    if launch == "slurm":
        # Devices are pinned by setup() (one GPU per process when several share a node), so the resolver only
        # lays out host:port addresses: one "slot" per task, and it must not touch CUDA_VISIBLE_DEVICES (too
        # late once TensorFlow has listed the GPUs; with 0 GPUs its own arithmetic divides by zero).
        # Its num_accelerators() would then report that slot as a GPU, so only its cluster is kept.
        slots = max(_expand_tasks_per_node(os.environ["SLURM_STEP_TASKS_PER_NODE"]))
        slurm = tf.distribute.cluster_resolver.SlurmClusterResolver(
            port_base=_port_base(), gpus_per_node=slots, gpus_per_task=1, auto_set_gpu=False)
        spec = slurm.cluster_spec()
        return tf.distribute.cluster_resolver.SimpleClusterResolver(
            spec, task_type=slurm.task_type, task_id=slurm.task_id, rpc_layer="grpc",
            num_accelerators={"GPU": num_gpus} if num_gpus else None)
    return None


def _pin_gpu(gpus, log_notes):
    """One GPU per process when several processes share a node (the original's Horovod layout)."""
    local_rank, local_size = local_process()
    if not gpus or local_size <= 1:
        return gpus
    if local_size > len(gpus):
        log_notes.append(f"warning: {local_size} processes on this node share {len(gpus)} GPU(s)")
    gpu = gpus[local_rank % len(gpus)]
    tf.config.set_visible_devices([gpu], "GPU")
    return [gpu]


def setup(amp=False, use_xla=False, horovod=False, log=print, cpu_bf16=None):
    """Pick the strategy and the precision: set Keras's dtype policy; the runtime's ``matmul_dtype`` is for
    modeling.set_matmul_dtype, which the caller sets (biobert.job.start_job). Call before any model is built.

    ``cpu_bf16``: whether --amp on a CPU uses bfloat16 products; None decides by BIOBERT_CPU_BF16 or the CPU's flags.
    """
    notes = []
    gpus = _pin_gpu(tf.config.list_physical_devices("GPU"), notes)
    for gpu in gpus:
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:
            pass
    if horovod:
        try:
            import horovod.tensorflow  # noqa: F401
            notes.append("Horovod is importable, but this port distributes with tf.distribute; "
                         "the mpirun/srun launch maps onto MultiWorkerMirroredStrategy")
        except ImportError:
            notes.append("--horovod: Horovod is not installed (it does not build against TensorFlow 2.21); "
                         "running the same launch on tf.distribute instead")
    resolver = _multi_worker_resolver(len(gpus))
    if resolver is not None:
        # On GPUs the gradient all-reduce uses NCCL (TF's default there is its own ring); on CPUs, TF's ring.
        implementation = (tf.distribute.experimental.CommunicationImplementation.NCCL if gpus
                          else tf.distribute.experimental.CommunicationImplementation.AUTO)
        # A step that takes BIOBERT_COLLECTIVE_TIMEOUT seconds (default 120) longer than the longest before it stops
        # the run (runcontrol.CollectiveWatchdog: one thread), so a hung worker stops the others instead of hanging; a
        # dead or unreachable one is found by TensorFlow's health check (a killed one at once). The collectives
        # themselves get no timeout_seconds: TensorFlow starts a thread per collective that sleeps out the timeout.
        timeout = _collective_timeout()
        strategy = tf.distribute.MultiWorkerMirroredStrategy(
            cluster_resolver=resolver,
            communication_options=tf.distribute.experimental.CommunicationOptions(implementation=implementation))
        task = resolver.task_id or 0
        workers = len(resolver.cluster_spec().as_dict().get("worker", [])) or 1
        kind = f"MultiWorkerMirroredStrategy over {workers} workers"
    elif len(gpus) > 1:
        timeout = None
        strategy = tf.distribute.MirroredStrategy()
        task, workers = 0, 1
        kind = f"MirroredStrategy over {len(gpus)} GPUs"
    else:
        timeout = None
        strategy = tf.distribute.get_strategy()
        task, workers = 0, 1
        kind = "one process, one device (" + ("GPU" if gpus else "CPU") + ")"
    device = "gpu" if gpus else "cpu"
    policy = "mixed_float16" if amp and device == "gpu" else "float32"
    matmul_dtype = "bfloat16" if amp and device == "cpu" and _cpu_bf16(cpu_bf16, notes) else None
    keras.mixed_precision.set_dtype_policy(policy)
    description = (f"{kind}; {strategy.num_replicas_in_sync} replica(s); "
                   f"precision {_precision_name(policy, matmul_dtype)}"
                   + ("; XLA jit_compile on" if use_xla else "; XLA off"))
    if horovod and workers == 1:
        notes.append("running on one process")
    runtime = Runtime(strategy=strategy, num_replicas=strategy.num_replicas_in_sync, num_workers=workers,
                      worker_index=task, device=device, policy=policy,
                      loss_scaling=policy == "mixed_float16", description=description,
                      matmul_dtype=matmul_dtype, collective_timeout=timeout)
    if runtime.is_chief:
        for note in notes:
            log(note)
        log(description)
    return runtime
