"""Starting an entry point that uses TensorFlow: a quiet TensorFlow start-up, then ``run`` and ``main_guard``
(biobert.flags: flag checks before any work, user errors as one ``error:`` line with exit status 1). Setting up
the job itself (config, strategy, run log) is biobert.job's.

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
