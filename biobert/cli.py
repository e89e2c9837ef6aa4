"""Running an entry point: user errors become one ``error:`` line and exit status 1."""
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main_guard(fn):
    """Wrap an absl ``main(argv)``: InputError -> ``error: ...`` on stderr and exit 1; Ctrl-C -> exit 130;
    a preempted run (SIGTERM/SIGUSR1, checkpoint saved) -> exit 75 (training.PREEMPTED_EXIT_STATUS)."""
    from biobert.errors import InputError
    from biobert.training import PREEMPTED_EXIT_STATUS, Preempted

    def wrapped(argv):
        try:
            return fn(argv)
        except InputError as err:
            print(f"error: {err}", file=sys.stderr, flush=True)
            sys.exit(1)
        except Preempted as err:
            print(f"preempted: {err}", file=sys.stderr, flush=True)
            sys.exit(PREEMPTED_EXIT_STATUS)
        except KeyboardInterrupt:
            print("interrupted: the last checkpoint in output_dir is intact; run the same command to resume",
                  file=sys.stderr, flush=True)
            sys.exit(130)

    return wrapped


def start_job(FLAGS, config_file):
    """What every training job does first: read the BERT config (checking max_seq_length against it), seed,
    pick the strategy and precision, create output_dir, open the run log with the flag values.

    Returns (BertConfig, distribution.Runtime, dllogger.RunLog).
    """
    import tensorflow as tf

    from biobert import distribution
    from biobert.config import BertConfig
    from biobert.dllogger import RunLog
    from biobert.errors import InputError

    config = BertConfig.from_json_file(config_file)
    if FLAGS.max_seq_length > config.max_position_embeddings:
        raise InputError(f"--max_seq_length {FLAGS.max_seq_length} exceeds the model's max_position_embeddings "
                         f"{config.max_position_embeddings}", path=config_file)
    tf.keras.utils.set_random_seed(FLAGS.seed)
    runtime = distribution.setup(amp=FLAGS.amp, use_xla=FLAGS.use_xla, horovod=FLAGS.horovod,
                                 log=lambda text: print(text, flush=True))
    os.makedirs(FLAGS.output_dir, exist_ok=True)
    log = RunLog(FLAGS.dllog_path, enabled=runtime.is_chief)
    log.parameters(flag_values(FLAGS))
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
