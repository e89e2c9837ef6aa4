"""Running an entry point: a quiet TensorFlow start-up, flag checks before any work, and user errors as one
``error:`` line with exit status 1.

Importing this module first (every entry point does) imports TensorFlow with its start-up chatter filtered:
the C++ lines printed before logging is initialised (CUDA stubs and drivers missing on a CPU machine, CPU
feature and oneDNN notes) are dropped, anything else TensorFlow says then is passed on. ``BIOBERT_VERBOSE=1``
shows everything, as TensorFlow prints it.
"""
import os
import re
import sys
import tempfile

from biobert.flags import main_guard  # noqa: F401  (entry points wrap their main in cli.main_guard)

VERBOSE = os.environ.get("BIOBERT_VERBOSE", "").strip().lower() in ("1", "true", "yes")
if not VERBOSE:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# TensorFlow start-up lines that say nothing a user must act on.
STARTUP_NOISE = re.compile(
    r"All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|cudart_stub\.cc|Could not find cuda drivers|failed call to cuInit|cuda_(platform|executor|diagnostics)\.cc"
    r"|cpu_feature_guard\.cc|To enable the following instructions|rebuild TensorFlow with the appropriate compiler"
    r"|oneDNN custom operations are on|TF_ENABLE_ONEDNN_OPTS"
    r"|Unable to register cu(DNN|FFT|BLAS) factory|computation_placer\.cc|TF-TRT Warning"
    r"|Attempting to register factory for plugin")


def filter_startup_noise(text):
    """The lines of ``text`` that are not TensorFlow start-up noise."""
    return [line for line in text.splitlines() if line.strip() and not STARTUP_NOISE.search(line)]


def import_tensorflow_quietly():
    """Import TensorFlow and look for devices (which initialises CUDA) with stderr captured at the file-descriptor
    level (the C++ runtime writes there directly); re-print what is not start-up noise. Returns the module."""
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    if VERBOSE:
        import tensorflow as tf

        tf.config.list_physical_devices()
        return tf
    sys.stderr.flush()
    saved = os.dup(2)
    capture = tempfile.TemporaryFile()
    try:
        os.dup2(capture.fileno(), 2)
        import tensorflow as tf

        tf.config.list_physical_devices()
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        capture.seek(0)
        kept = filter_startup_noise(capture.read().decode("utf-8", errors="replace"))
        capture.close()
        if kept:
            print("\n".join(kept), file=sys.stderr, flush=True)
    return tf


import_tensorflow_quietly()


def run(main):
    """``absl.app.run(main)``: a bad flag value is one ``error:`` line (exit 1), ``--help`` exits 0."""
    from biobert.flags import run as run_main

    run_main(main)



def dllog_path(FLAGS):
    """The run log's path: --dllog_path, else <output_dir>/bert_dllog.json."""
    return FLAGS.dllog_path or os.path.join(FLAGS.output_dir, "bert_dllog.json")


def start_job(FLAGS, config_or_file):
    """What every training job does first: read the BERT config (checking max_seq_length against it), seed,
    pick the strategy and precision, create output_dir, open the run log (appended to; each run starts with a
    PARAMETER line holding the command line and the flag values). From its start a preemption signal ends the job
    with exit status 75 (runcontrol.PREEMPTION).

    ``config_or_file``: a BertConfig or the path of its json file.
    Returns (BertConfig, distribution.Runtime, dllogger.RunLog).
    """
    import tensorflow as tf

    from biobert import distribution
    from biobert.config import BertConfig
    from biobert.dllogger import RunLog
    from biobert.errors import InputError

    from biobert.runcontrol import PREEMPTION

    # From here SIGTERM/SIGUSR1 end the job with exit status 75 ("run it again"), after the training loop's
    # checkpoint when one is under way (runcontrol.PreemptionSignals).
    PREEMPTION.install()
    if isinstance(config_or_file, BertConfig):
        config, config_file = config_or_file, None
    else:
        config, config_file = BertConfig.from_json_file(config_or_file), config_or_file
    if FLAGS.max_seq_length > config.max_position_embeddings:
        raise InputError(f"--max_seq_length {FLAGS.max_seq_length} exceeds the model's max_position_embeddings "
                         f"{config.max_position_embeddings}", path=config_file)
    tf.keras.utils.set_random_seed(FLAGS.seed)
    runtime = distribution.setup(amp=FLAGS.amp, use_xla=FLAGS.use_xla, horovod=FLAGS.horovod,
                                 log=lambda text: print(text, flush=True))
    os.makedirs(FLAGS.output_dir, exist_ok=True)
    log = RunLog(dllog_path(FLAGS), enabled=runtime.is_chief)
    log.parameters(dict(flag_values(FLAGS), command=" ".join(sys.argv)))
    return config, runtime, log


def flag_values(FLAGS):
    """The values of the flags defined by the entry point and biobert (not absl's or TensorFlow's own)."""
    values = {}
    for module, module_flags in FLAGS.flags_by_module_dict().items():
        if not (module in ("__main__", "__init__") or module.startswith(("biobert", "run_"))):
            continue
        for flag in module_flags:
            values[flag.name] = flag.value
    return values


def write_results(path, results):
    """``key = value`` lines, sorted by key, written atomically (eval_results.txt)."""
    from biobert.fileio import atomic_write_text

    atomic_write_text(path, "".join(f"{k} = {v}\n" for k, v in sorted(results.items())))
