"""Running an entry point: user errors become one ``error:`` line and exit status 1."""
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main_guard(fn):
    """Wrap an absl ``main(argv)``: InputError -> ``error: ...`` on stderr and exit 1; Ctrl-C -> exit 130."""
    from biobert.errors import InputError

    def wrapped(argv):
        try:
            return fn(argv)
        except InputError as err:
            print(f"error: {err}", file=sys.stderr, flush=True)
            sys.exit(1)
        except KeyboardInterrupt:
            print("interrupted: the last checkpoint in output_dir is intact; run the same command to resume",
                  file=sys.stderr, flush=True)
            sys.exit(130)

    return wrapped


# ----------------------------------------------------------------------------------------------------------
# --help: every flag the program reads, grouped, with defaults (absl's own flags stay behind --helpfull)

HELP_GROUPS = (
    ("Task and data", ("task_name", "data_dir", "output_dir", "predict_file", "max_seq_length", "max_words",
                       "do_train", "do_eval", "do_predict", "input_files_dir", "eval_files_dir", "input_file",
                       "output_file", "input_folder", "output_folder", "splits", "duplicate_multi_label", "task",
                       "output_path", "answer_path")),
    ("Model, vocabulary and checkpoints", ("bert_config_file", "vocab_file", "do_lower_case", "init_checkpoint",
                                           "export_dir", "save_checkpoints_steps")),
    ("Training", ("train_batch_size", "learning_rate", "num_train_epochs", "num_train_steps", "warmup_proportion",
                  "num_warmup_steps", "optimizer_type", "weight_decay_rate", "num_accumulation_steps",
                  "allreduce_post_accumulation", "group_by_length", "ner_label_scheme", "seed", "init_loss_scale",
                  "max_predictions_per_seq", "masked_lm_prob", "short_seq_prob", "dupe_factor", "random_seed",
                  "do_whole_word_mask")),
    ("Evaluation and prediction", ("eval_batch_size", "predict_batch_size", "max_eval_steps")),
    ("Precision, XLA and distribution", ("amp", "use_xla", "horovod")),
    ("Logging", ("dllog_path", "iterations_per_loop", "display_loss_steps", "report_loss")),
    ("Accepted for compatibility", ("do_prepare",)),
)


def program_flags(FLAGS):
    """The flags this program defines itself or adopts (key flags of __main__), by name."""
    import sys as _sys

    names = {}
    for module in (_sys.argv[0], "__main__"):
        for flag in FLAGS.get_key_flags_for_module(module):
            names[flag.name] = flag
    return names


def help_text(FLAGS):
    """The program's docstring, then its flags in HELP_GROUPS order (absl's rendering: help and default)."""
    import sys as _sys

    doc = (_sys.modules["__main__"].__doc__ or f"USAGE: {_sys.argv[0]} [flags]").rstrip("\n") + "\n"
    own = program_flags(FLAGS)
    lines, shown = [doc, "flags:"], set()
    groups = list(HELP_GROUPS) + [("Other", tuple(sorted(own)))]
    for title, names in groups:
        members = [own[n] for n in names if n in own and n not in shown]
        if not members:
            continue
        shown.update(f.name for f in members)
        lines += ["", f"{title}:"]
        FLAGS._render_flag_list(members, lines, prefix="  ")   # absl's own format (help, default, type)
    lines += ["", "Try --helpfull to get a list of all flags (absl's and TensorFlow's too)."]
    return "\n".join(lines) + "\n"


def run(main):
    """``absl.app.run(main)`` with a --help (-?, --helpshort) that lists every flag of the program, grouped,
    and exits 0."""
    from absl import app, flags

    class GroupedHelp(flags.BooleanFlag):
        def __init__(self, name, short_name=None):
            super().__init__(name, False, "show this help: every flag of this program, grouped, with defaults",
                             short_name=short_name, allow_override=True, allow_hide_cpp=True)

        def parse(self, arg):
            if self._parse(arg):
                sys.stdout.write(help_text(flags.FLAGS))
                sys.stdout.flush()
                sys.exit(0)

    app.define_help_flags()
    flags.DEFINE_flag(GroupedHelp("help", "?"), module_name="absl.app")
    flags.DEFINE_flag(GroupedHelp("helpshort"), module_name="absl.app")
    app.run(main)


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
