"""absl flags shared by the entry points (the original recipe's names and defaults), and ``check``: every flag
value and combination a user can get wrong, tested before any work starts (main_guard calls it)."""
import os
import sys

from absl import flags

from biobert.config import PRESETS
from biobert.defaults import TRAINING
from biobert.errors import InputError


def define_common(dllog_path=None):
    flags.DEFINE_string("bert_config_file", None, "The config json file of the pre-trained BERT model (Google's "
                        "bert_config.json or a Hugging Face config.json). Optional when --init_checkpoint comes "
                        "with one: a Hugging Face folder's config.json, or bert_config.json in the folder of a TF "
                        "checkpoint (Google's and BioBERT's releases, this project's checkpoints).")
    flags.DEFINE_string("output_dir", None, "Where checkpoints, predictions and results are written. A checkpoint "
                        "already there is resumed.")
    flags.DEFINE_string("init_checkpoint", None, "Initial weights: a TF1 checkpoint (bert_model.ckpt, "
                        "model.ckpt-N, as Google/NGC/BioBERT ship them), a Hugging Face folder with "
                        "model.safetensors, or a checkpoint of this project. Weights only.")
    flags.DEFINE_string("dllog_path", dllog_path, "Filename of the dllogger-style JSON-lines run log [default: "
                        "<output_dir>/bert_dllog.json; the original wrote /results/bert_dllog.json]. Each run "
                        "appends to it, starting with a PARAMETER line (the command and the flag values).")
    flags.DEFINE_integer("save_checkpoints_steps", TRAINING["save_checkpoints_steps"],
                         "How often to save the model checkpoint (the latest is kept).")
    flags.DEFINE_bool("horovod", False, "Accepted for compatibility with the original launch (mpirun ... --horovod). "
                      "Horovod does not build against TensorFlow 2.21; the same multi-process launch runs on "
                      "tf.distribute (MultiWorkerMirroredStrategy).")
    flags.DEFINE_bool("amp", True, "Mixed precision: float16 with dynamic loss scaling on GPUs; on CPUs with bfloat16 "
                      "arithmetic (AVX512_BF16, AMX, Arm BF16), bfloat16 matrix products in an otherwise float32 "
                      "model; other CPUs run float32, where bfloat16 would be emulated and slower "
                      "(BIOBERT_CPU_BF16=1/0 overrides).")
    flags.DEFINE_bool("use_xla", TRAINING["use_xla"],
                      "Compile the training and inference steps with XLA (jit_compile).")
    flags.DEFINE_bool("do_prepare", False, "Accepted and ignored (the original scripts pass it).")
    flags.DEFINE_integer("seed", 12345, "Random seed for initialisation, dropout and data order.")
    flags.DEFINE_integer("max_nonfinite_steps", TRAINING["max_nonfinite_steps"],
                         "Stop the run when this many optimizer steps in a row have "
                         "non-finite gradients (each such step is skipped on every replica and, under float16, "
                         "halves the loss scale).")


def define_finetuning(do_lower_case, train_batch_size, eval_batch_size, predict_batch_size, learning_rate,
                      num_train_epochs, max_seq_length, task_name, group_by_length=True):
    define_common()
    flags.DEFINE_string("task_name", task_name, "The name of the task to train.")
    flags.DEFINE_string("data_dir", None, "The input data dir (train/dev/test files of the task).")
    flags.DEFINE_string("vocab_file", None, "The WordPiece vocabulary the BERT model was trained on. Optional "
                        "when --init_checkpoint is a Hugging Face folder: its vocab.txt is used.")
    flags.DEFINE_enum("bert_model", None, sorted(PRESETS), "A built-in model size to use instead of "
                      "--bert_config_file (vocab_size from the vocabulary): 'tiny' (2 layers, hidden 128) trains in "
                      "seconds to try the recipe; 'base' and 'large' are Google's BERT-base and BERT-large.")
    flags.DEFINE_bool("do_lower_case", do_lower_case, "Lower-case the input (True for uncased models).")
    flags.DEFINE_integer("max_seq_length", max_seq_length, "Maximum total input length after WordPiece "
                         "tokenization; longer inputs are truncated, shorter ones padded per batch.")
    flags.DEFINE_bool("do_train", False, "Whether to run training.")
    flags.DEFINE_string("export_dir", None, "Write the fine-tuned model (after training, or the --init_checkpoint "
                        "fine-tuned folder with no training) as a TensorFlow SavedModel here: serving_default "
                        "takes a batch of raw sentences (tokenized in the graph with tensorflow-text) and returns "
                        "entity spans (NER) or class probabilities (RE); label_map.json, vocab.txt and "
                        "bert_config.json beside it.")
    flags.DEFINE_bool("do_eval", False, "Whether to run eval on the dev set.")
    flags.DEFINE_bool("do_predict", False, "Whether to run the model in inference mode on the test set (or, with "
                      "--predict_file, on your own text).")
    flags.DEFINE_string("predict_file", None, "Predict on this file (implies --do_predict) instead of the test set "
                        "and write <output_dir>/predictions.jsonl, one record per input line in input order. Plain "
                        "text (one document a line) or JSON lines with \"text\" and an optional \"id\" (relation "
                        "extraction: with the chemical's and the gene's character spans, or the @CHEMICAL$/@GENE$ "
                        "masked form). Pass the fine-tuned output folder as --init_checkpoint: its label map, "
                        "vocabulary, casing, config and (unless --max_seq_length is given) sequence length are "
                        "used.")
    flags.DEFINE_integer("train_batch_size", train_batch_size, "Training batch size per replica (GPU/process).")
    flags.DEFINE_integer("eval_batch_size", eval_batch_size, "Batch size for eval.")
    flags.DEFINE_integer("predict_batch_size", predict_batch_size, "Batch size for predict.")
    flags.DEFINE_float("learning_rate", learning_rate, "The peak learning rate for Adam per replica: the run uses "
                       "it times the number of replicas (GPUs over all processes), as the original times "
                       "hvd.size().")
    flags.DEFINE_float("num_train_epochs", num_train_epochs, "Total number of training epochs to perform.")
    flags.DEFINE_integer("num_train_steps", None, "Number of optimizer steps to train; overrides "
                         "--num_train_epochs (for quick checks).")
    flags.DEFINE_integer("max_eval_examples", None, "Evaluate on the first N dev examples only (quick checks).")
    flags.DEFINE_integer("max_predict_examples", None, "Predict the first N test examples only (quick checks; "
                         "the scores then cover those examples).")
    flags.DEFINE_float("warmup_proportion", 0.1, "Proportion of training to perform linear learning rate warmup "
                       "for. E.g., 0.1 = 10% of training.")
    flags.DEFINE_integer("iterations_per_loop", 100, "How many training steps between progress lines in the log "
                         "(in the original: steps per TPU loop).")
    flags.DEFINE_integer("num_accumulation_steps", TRAINING["num_accumulation_steps"],
                         "Micro-batches accumulated into one optimizer step.")
    flags.DEFINE_float("weight_decay_rate", TRAINING["weight_decay_rate"],
                       "Decoupled weight decay (not on LayerNorm and bias).")
    flags.DEFINE_bool("adam_bias_correction", TRAINING["adam_bias_correction"],
                      "Divide Adam's moments by (1 - beta^t) (textbook Adam, as Hugging Face's AdamW). "
                      "--noadam_bias_correction is Google's and NVIDIA's AdamWeightDecayOptimizer, less accurate "
                      "in fine-tuning (BENCHMARKS.md, 'Adam bias correction'), so correction stays on by default.")
    flags.DEFINE_bool("group_by_length", group_by_length, "Sort the shuffled training rows by length within "
                      "windows of 64 batches, so that batches need little padding (a batch then holds rows of "
                      "similar length only). --nogroup_by_length keeps the plain shuffle, as Hugging Face's "
                      "Trainer does; for relation extraction each batch is then computed in up to 4 "
                      "length-sorted parts of at least 8 rows (the same loss and update, less padding).")


# ----------------------------------------------------------------------------------------------------------
# Parsing: absl's, but a bad value is one ``error:`` line and ``--help`` exits 0 (absl exits 1)

HELP_FLAGS = ("-h", "-?", "--help", "--helpshort", "--helpfull", "--helpxml")


def parse_flags(argv):
    """absl's flag parsing, but a bad value is one ``error:`` line (exit 1) and ``--help`` exits 0."""
    wants_help = any(a.split("=")[0] in HELP_FLAGS for a in argv[1:])
    try:
        return flags.FLAGS(argv)
    except flags.Error as err:
        print(f"error: {err}", file=sys.stderr, flush=True)
        sys.exit(1)
    except SystemExit as stop:
        if wants_help and stop.code == 1:
            sys.exit(0)
        raise


# ----------------------------------------------------------------------------------------------------------
# --help: every flag the program reads, grouped, with defaults (absl's own flags stay behind --helpfull)

HELP_GROUPS = (
    ("Task and data", ("task_name", "data_dir", "output_dir", "predict_file", "labels", "max_seq_length", "max_words",
                       "do_train", "do_eval", "do_predict", "input_files_dir", "eval_files_dir", "input_file",
                       "output_file", "input_folder", "output_folder", "splits", "duplicate_multi_label", "task",
                       "output_path", "answer_path")),
    ("Model, vocabulary and checkpoints", ("bert_config_file", "vocab_file", "do_lower_case", "init_checkpoint",
                                           "checkpoint", "export_dir", "save_checkpoints_steps")),
    ("Training", ("train_batch_size", "learning_rate", "num_train_epochs", "num_train_steps", "warmup_proportion",
                  "num_warmup_steps", "optimizer_type", "weight_decay_rate", "num_accumulation_steps",
                  "allreduce_post_accumulation", "group_by_length", "ner_label_scheme", "seed", "init_loss_scale",
                  "max_predictions_per_seq", "masked_lm_prob", "short_seq_prob", "dupe_factor", "random_seed",
                  "do_whole_word_mask")),
    ("Evaluation and prediction", ("eval_batch_size", "predict_batch_size", "max_eval_steps", "eval_before_training")),
    ("Precision, XLA and distribution", ("amp", "use_xla", "horovod")),
    ("Logging", ("dllog_path", "iterations_per_loop", "display_loss_steps", "report_loss")),
    ("Accepted for compatibility", ("do_prepare",)),
)


def program_flags(FLAGS):
    """The flags this program defines itself or adopts (key flags of __main__), by name; a flag whose name
    another definition took over since is left out."""
    names = {}
    for module in (sys.argv[0], "__main__"):
        for flag in FLAGS.get_key_flags_for_module(module):
            if flag.name in FLAGS and FLAGS[flag.name] is flag:
                names[flag.name] = flag
    return names


def describe_flag(flag, indent="  "):
    """One flag as absl's --helpfull shows it: ``--name: help`` (``--[no]name`` for a boolean), then its default
    and, for a number or a choice, the values it takes, wrapped to the help width."""
    name = f"--[no]{flag.name}" if flag.boolean else f"--{flag.name}"
    if flag.short_name:
        name = f"-{flag.short_name},{name}"
    text = flags.text_wrap(f"{name}: {flag.help or ''}", indent=indent + "  ", firstline_indent=indent)
    for note in (f"default: {flag.default_as_str}" if flag.default_as_str else None,
                 flag.parser.syntactic_help):
        if note:
            text += "\n" + flags.text_wrap(f"({note})", indent=indent + "  ")
    return text


def help_text(FLAGS):
    """The program's docstring, then its flags in HELP_GROUPS order (each group sorted by name)."""
    doc = (sys.modules["__main__"].__doc__ or f"USAGE: {sys.argv[0]} [flags]").rstrip("\n") + "\n"
    own = program_flags(FLAGS)
    lines, shown = [doc, "flags:"], set()
    for title, names in list(HELP_GROUPS) + [("Other", tuple(own))]:
        members = sorted(n for n in names if n in own and n not in shown)
        if members:
            shown.update(members)
            lines += ["", f"{title}:"] + [describe_flag(own[n]) for n in members]
    lines += ["", "Try --helpfull to get a list of all flags (absl's and TensorFlow's too)."]
    return "\n".join(lines) + "\n"


def run(main):
    """``absl.app.run(main)`` with parse_flags as the flag parser (a bad value is one ``error:`` line) and a
    --help (-?, --helpshort) that lists every flag of the program, grouped, and exits 0. Entry points without
    TensorFlow use it directly; the others through biobert.cli.run."""
    from absl import app

    class GroupedHelp(flags.BooleanFlag):
        def __init__(self, name, short_name=None):
            super().__init__(name, False, "show this help: every flag of this program, grouped, with defaults",
                             short_name=short_name, allow_override=True, allow_hide_cpp=True)

        def parse(self, arg):
            super().parse(arg)
            if self.value:
                sys.stdout.write(help_text(flags.FLAGS))
                sys.stdout.flush()
                sys.exit(0)

    app.define_help_flags()
    flags.DEFINE_flag(GroupedHelp("help", "?"), module_name="absl.app")
    flags.DEFINE_flag(GroupedHelp("helpshort"), module_name="absl.app")
    app.run(main, flags_parser=parse_flags)


def main_guard(fn):
    """Wrap an absl ``main(argv)``: the flags are checked first (``check``), then InputError -> ``error: ...`` on
    stderr and exit 1; Ctrl-C -> exit 130; a preempted run (SIGTERM/SIGUSR1, checkpoint saved) -> ``preempted:
    ...`` and exit 75 (errors.PREEMPTED_EXIT_STATUS)."""
    from biobert.errors import PREEMPTED_EXIT_STATUS, Preempted

    def wrapped(argv):
        try:
            check(flags.FLAGS)
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


# ----------------------------------------------------------------------------------------------------------
# Checks before any work

POSITIVE_INTS = ("train_batch_size", "eval_batch_size", "predict_batch_size", "max_seq_length",
                 "num_accumulation_steps", "iterations_per_loop", "max_predictions_per_seq", "dupe_factor",
                 "display_loss_steps", "max_eval_steps", "max_words", "num_train_steps", "max_eval_examples",
                 "max_predict_examples")
MIN_SEQ_LENGTH = 3      # [CLS], one word piece, [SEP]
NON_NEGATIVE_INTS = ("save_checkpoints_steps", "num_warmup_steps")
POSITIVE_FLOATS = ("num_train_epochs", "init_loss_scale")
NON_NEGATIVE_FLOATS = ("weight_decay_rate", "learning_rate")    # a rate of 0: replays that keep the weights
PROPORTIONS = {"warmup_proportion": (0.0, 1.0, True), "short_seq_prob": (0.0, 1.0, True),
               "masked_lm_prob": (0.0, 1.0, False)}     # name: (low, high, low included)


def _get(FLAGS, name):
    return getattr(FLAGS, name) if name in FLAGS else None


def check(FLAGS):
    """Raise InputError for the first flag value or combination that cannot work. Reads no data beyond the
    vocabulary (its casing) and writes nothing."""
    for name in POSITIVE_INTS + POSITIVE_FLOATS:
        value = _get(FLAGS, name)
        if value is not None and not value > 0:
            raise InputError(f"--{name} must be positive, got {value}")
    for name in NON_NEGATIVE_INTS + NON_NEGATIVE_FLOATS:
        value = _get(FLAGS, name)
        if value is not None and value < 0:
            raise InputError(f"--{name} must not be negative, got {value}")
    for name, (low, high, low_included) in PROPORTIONS.items():
        value = _get(FLAGS, name)
        if value is not None and not ((low <= value if low_included else low < value) and value <= high):
            raise InputError(f"--{name} must lie in {'[' if low_included else '('}{low:g}, {high:g}], got {value}")
    seq, pred = _get(FLAGS, "max_seq_length"), _get(FLAGS, "max_predictions_per_seq")
    if seq is not None and seq < MIN_SEQ_LENGTH:
        raise InputError(f"--max_seq_length must be at least {MIN_SEQ_LENGTH} ([CLS], a token, [SEP]), got {seq}")
    if seq is not None and pred is not None and pred > seq:
        raise InputError(f"--max_predictions_per_seq {pred} exceeds --max_seq_length {seq}")
    steps, warmup = _get(FLAGS, "num_train_steps"), _get(FLAGS, "num_warmup_steps")
    if steps is not None and warmup is not None and warmup > steps and _get(FLAGS, "do_train"):
        print(f"warning: --num_warmup_steps {warmup} exceeds --num_train_steps {steps}: the learning rate never "
              "reaches --learning_rate", file=sys.stderr, flush=True)
    for name, what in (("bert_config_file", "BERT config file"), ("vocab_file", "vocabulary file")):
        path = _get(FLAGS, name)
        if path and not os.path.isfile(path):
            raise InputError(f"{what} not found (--{name})", path=path)
    if _get(FLAGS, "bert_config_file") and _get(FLAGS, "bert_model"):
        raise InputError("pass --bert_config_file or --bert_model, not both")
    for name in ("data_dir",):
        path = _get(FLAGS, name)
        if path and not os.path.isdir(path):
            raise InputError(f"data directory not found (--{name})", path=path)
    init = _get(FLAGS, "init_checkpoint")
    if init:
        from biobert import checkpoints

        if checkpoints.hf_folder(init) is None and checkpoints.resolve_tf_checkpoint(init) is None:
            what = "folder holds no model.safetensors and no 'checkpoint' file" if os.path.isdir(init) else \
                "not found"
            raise InputError(f"--init_checkpoint {what} (expected a TF checkpoint prefix such as "
                             "bert_model.ckpt or model.ckpt-1000, a folder with a 'checkpoint' file, or a Hugging "
                             "Face folder with model.safetensors)", path=init)
    if "do_lower_case" in FLAGS and "vocab_file" in FLAGS:
        from biobert import checkpoints, job

        vocab = FLAGS.vocab_file or (checkpoints.model_files(init)["vocab"] if init else None)
        # Predicting from a fine-tuned folder: its own casing (model_info.json), as the job takes it.
        source, info = job.predicted_model(init, _get(FLAGS, "output_dir"), _get(FLAGS, "do_train"))
        lower = job.model_casing(FLAGS.do_lower_case, FLAGS["do_lower_case"].present, info, source) if info \
            else FLAGS.do_lower_case
        if vocab and os.path.isfile(vocab):
            check_casing(vocab, lower)


def vocabulary_is_cased(vocab_file):
    """True when more than 1% of the vocabulary's word pieces hold a capital letter: a threshold far from both
    a cased vocabulary (capitals in a good share of its pieces) and an uncased one (in next to none)."""
    total = capitals = 0
    with open(vocab_file, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            token = line.strip()
            if not token or (token.startswith("[") and token.endswith("]")):
                continue
            total += 1
            capitals += any(c.isupper() for c in token)
    return total > 0 and capitals > 0.01 * total


def check_casing(vocab_file, do_lower_case):
    """Stop when the vocabulary's casing contradicts --do_lower_case (as Google's
    tokenization.validate_case_matches_checkpoint did for the known checkpoints)."""
    cased = vocabulary_is_cased(vocab_file)
    if cased and do_lower_case:
        raise InputError("the vocabulary is cased (it holds capitalised word pieces) but --do_lower_case is true: "
                         "the text would be lower-cased and its capitals never matched; pass --nodo_lower_case "
                         "(or an uncased vocabulary)", path=vocab_file)
    if not cased and not do_lower_case:
        raise InputError("the vocabulary is uncased but --do_lower_case is false: every capitalised word would "
                         "become [UNK]; pass --do_lower_case (or a cased vocabulary)", path=vocab_file)
