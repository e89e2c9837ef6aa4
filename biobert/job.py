"""The job layer: a program's flags turned, once, into the Settings of its fine-tuning or pre-training job, and
what every job does first (start_job).

Each decision that depends on several flags, or on the files they point to, is made here and only here:

* the model files (``model_files``): --bert_config_file, else --bert_model's preset, else the config saved by
  the run being resumed (pre-training), else the config and vocabulary that come with --init_checkpoint;
* predicting from a fine-tuned folder (``predicted_model``, ``model_casing``, ``sequence_length``): its
  model_info.json gives the casing and the sequence length it was trained with, unless the command line says
  otherwise (another casing stops: the vocabulary would not match);
* what a job is asked to do and the flags that must come with it (``check_finetuning``, ``check_pretraining``).

biobert.finetuning, biobert.pretraining and the task adapters (biobert.tasks) take Settings (or plain values)
and read no flags.
"""
import dataclasses
import os
import sys

from biobert import checkpoints
from biobert.errors import InputError


@dataclasses.dataclass(frozen=True)
class Settings:
    """Every value a job reads, named as its flag (None where the program has no such flag)."""
    # What to do. ``predict_test``: --do_predict on the test set; --predict_file predicts on that file instead.
    do_train: bool = False
    do_eval: bool = False
    predict_test: bool = False
    predict_file: str = None
    export_dir: str = None
    # Where.
    data_dir: str = None
    output_dir: str = None
    init_checkpoint: str = None
    input_files_dir: str = None
    eval_files_dir: str = None
    dllog_path: str = None              # the run log: --dllog_path, else <output_dir>/bert_dllog.json
    # The model: ``bert_config`` a BertConfig (a --bert_model preset) or the path of its json file.
    bert_config: object = None
    vocab_file: str = None
    do_lower_case: bool = True
    max_seq_length: int = None
    model_info: dict = dataclasses.field(default_factory=dict)   # of the model predicted from ({} when training)
    # Training.
    seed: int = None
    train_batch_size: int = None
    learning_rate: float = None
    num_train_epochs: float = None
    num_train_steps: int = None
    num_warmup_steps: int = None
    warmup_proportion: float = None
    optimizer_type: str = None
    poly_power: float = None
    weight_decay_rate: float = None
    adam_bias_correction: bool = None
    num_accumulation_steps: int = None
    allreduce_post_accumulation: bool = None
    init_loss_scale: float = None
    max_nonfinite_steps: int = None
    save_checkpoints_steps: int = None
    display_loss_steps: int = None      # fine-tuning: --iterations_per_loop
    group_by_length: bool = None
    max_predictions_per_seq: int = None
    # Evaluating and predicting.
    eval_batch_size: int = None
    predict_batch_size: int = None
    max_eval_examples: int = None
    max_predict_examples: int = None
    max_eval_steps: int = None
    eval_before_training: bool = None
    # Precision, XLA, distribution.
    amp: bool = False
    use_xla: bool = False
    horovod: bool = False
    # The run log's PARAMETER line: the program's flag values and the command line.
    parameters: dict = dataclasses.field(default_factory=dict)


def flag_values(FLAGS):
    """The values of the flags defined by the entry point and biobert (not absl's or TensorFlow's own)."""
    values = {}
    for module, module_flags in FLAGS.flags_by_module_dict().items():
        if not (module in ("__main__", "__init__") or module.startswith(("biobert", "run_"))):
            continue
        for flag in module_flags:
            values[flag.name] = flag.value
    return values


def _common(FLAGS, logged=None, **resolved):
    """Settings from the flags of the same name, ``resolved`` values overriding them; ``logged``: values the run
    log's PARAMETER line shows instead of the flags'."""
    names = {field.name for field in dataclasses.fields(Settings)} - set(resolved)
    values = {name: getattr(FLAGS, name) for name in names if name in FLAGS}
    parameters = dict(flag_values(FLAGS), command=" ".join(sys.argv))
    parameters.update(logged or {})
    values.update(resolved)
    values["dllog_path"] = FLAGS.dllog_path or os.path.join(FLAGS.output_dir, "bert_dllog.json")
    return Settings(parameters=parameters, **values)


# ----------------------------------------------------------------------------------------------------------
# Fine-tuning

def check_finetuning(FLAGS):
    """InputError unless the flags ask for something to do and give the folders it needs."""
    if not (FLAGS.do_train or FLAGS.do_eval or FLAGS.do_predict or FLAGS.predict_file or FLAGS.export_dir):
        raise InputError("at least one of --do_train, --do_eval, --do_predict or --export_dir must be given")
    needs_data = FLAGS.do_train or FLAGS.do_eval or (FLAGS.do_predict and not FLAGS.predict_file)
    for name in ("data_dir", "output_dir") if needs_data else ("output_dir",):
        if not getattr(FLAGS, name):
            raise InputError(f"--{name} is required")
    if needs_data and not os.path.isdir(FLAGS.data_dir):
        raise InputError("data directory not found", path=FLAGS.data_dir)


def finetuning_settings(FLAGS):
    """The Settings of run_ner.py / run_re.py. Predicting only, the model comes from --init_checkpoint (or a
    checkpoint already in output_dir), and so do its vocabulary, config, casing and sequence length when that
    folder was written by a fine-tuning run."""
    check_finetuning(FLAGS)
    source, info = predicted_model(FLAGS.init_checkpoint, FLAGS.output_dir, FLAGS.do_train)
    do_lower_case = model_casing(FLAGS.do_lower_case, FLAGS["do_lower_case"].present, info, source)
    max_seq_length = sequence_length(FLAGS.max_seq_length, FLAGS["max_seq_length"].present, info)
    bert_config, vocab_file = model_files(FLAGS.bert_config_file, FLAGS.vocab_file, source, FLAGS.bert_model)
    return _common(FLAGS, predict_test=bool(FLAGS.do_predict and not FLAGS.predict_file),
                   predict_file=FLAGS.predict_file or None, model_info=info, do_lower_case=do_lower_case,
                   max_seq_length=max_seq_length, bert_config=bert_config, vocab_file=vocab_file,
                   display_loss_steps=FLAGS.iterations_per_loop)


def predicted_model(init_checkpoint, output_dir, do_train):
    """(source, info): the checkpoint or folder a model is taken from (--init_checkpoint, else, not training,
    the output_dir it is evaluated or predicted from) and, not training, its model_info.json ({} without one)."""
    source = init_checkpoint or (None if do_train else output_dir)
    return source, {} if do_train else checkpoints.read_model_info(source)


def model_casing(do_lower_case, given, info, source):
    """The casing to tokenize with: the flag's, but when predicting from a fine-tuned folder (``info``, its
    model_info.json, records it) that folder's; ``given`` (the flag set on the command line) and contradicting
    it stops, as the vocabulary would not match."""
    if "do_lower_case" not in info:
        return do_lower_case
    if given and bool(do_lower_case) != bool(info["do_lower_case"]):
        raise InputError(f"--do_lower_case={do_lower_case} but the model was fine-tuned with "
                         f"do_lower_case={info['do_lower_case']} (drop the flag to use the model's casing)",
                         path=os.path.join(checkpoints.checkpoint_folder(source), checkpoints.MODEL_INFO))
    return bool(info["do_lower_case"])


def sequence_length(max_seq_length, given, info):
    """The sequence length to predict with: --max_seq_length when given on the command line, else the one a
    fine-tuned folder was trained with (``info``, its model_info.json), else the flag's default."""
    if given or "max_seq_length" not in info:
        return max_seq_length
    return int(info["max_seq_length"])


# ----------------------------------------------------------------------------------------------------------
# Pre-training

def check_pretraining(FLAGS):
    """InputError unless the flags ask for training or evaluation and give the records each needs."""
    if not (FLAGS.do_train or FLAGS.do_eval):
        raise InputError("at least one of --do_train or --do_eval must be true")
    if FLAGS.do_train and not FLAGS.input_files_dir:
        raise InputError("--input_files_dir is required with --do_train")
    if FLAGS.do_eval and not FLAGS.eval_files_dir:
        raise InputError("--eval_files_dir is required with --do_eval")


def pretraining_settings(FLAGS):
    """The Settings of run_pretraining.py: the config as model_files finds it (a resumed run's own first), the
    vocabulary --vocab_file or the one beside --init_checkpoint (None: the output folder gets none)."""
    if not FLAGS.output_dir:
        raise InputError("--output_dir is required")
    resumed = FLAGS.output_dir if checkpoints.latest_checkpoint(FLAGS.output_dir) else None
    bert_config, vocab_file = model_files(FLAGS.bert_config_file, FLAGS.vocab_file, FLAGS.init_checkpoint,
                                          resumed=resumed, vocab_required=False, presets=False)
    check_pretraining(FLAGS)
    # The run log records the config file used, as given or as found.
    return _common(FLAGS, logged={"bert_config_file": bert_config}, bert_config=bert_config, vocab_file=vocab_file)


# ----------------------------------------------------------------------------------------------------------
# The model files

def model_files(bert_config_file, vocab_file, init_checkpoint, bert_model=None, resumed=None, vocab_required=True,
                presets=True):
    """(BertConfig or config path, vocabulary path). The vocabulary: ``vocab_file``, else the one that comes with
    ``init_checkpoint`` (checkpoints.model_files); missing, InputError when ``vocab_required``, else None. The
    config: ``bert_config_file``; else ``bert_model``'s preset (vocab_size from the vocabulary); else
    bert_config.json in ``resumed`` (the output_dir of a run being resumed); else the config that comes with
    ``init_checkpoint``. ``presets``: whether the program offers --bert_model (named in the error)."""
    found = checkpoints.model_files(init_checkpoint)
    vocab_file = vocab_file or found["vocab"]
    if not vocab_file and vocab_required:
        raise InputError("--vocab_file is required (or an --init_checkpoint with vocab.txt in its folder)")
    saved = os.path.join(resumed, "bert_config.json") if resumed else None
    if bert_config_file:
        return bert_config_file, vocab_file
    if bert_model:
        return preset_config(bert_model, vocab_file), vocab_file
    if saved and os.path.isfile(saved):
        return saved, vocab_file
    if found["config"]:
        return found["config"], vocab_file
    raise InputError("--bert_config_file is required (or " + ("--bert_model=tiny|base|large, or " if presets else "")
                     + "an --init_checkpoint with config.json / bert_config.json in its folder)")


def preset_config(bert_model, vocab_file):
    """The BertConfig of a --bert_model preset, its vocab_size the number of lines of ``vocab_file``."""
    from biobert.config import PRESETS, BertConfig

    with open(vocab_file, encoding="utf-8", errors="replace") as handle:
        vocab_size = sum(1 for _ in handle)
    return BertConfig(vocab_size=vocab_size, **PRESETS[bert_model])


# ----------------------------------------------------------------------------------------------------------
# Starting a job

def start_job(settings, config_or_file):
    """What every training job does first: read the BERT config (checking max_seq_length against it), seed,
    pick the strategy and precision (and set the models' matmul dtype to match), create output_dir, open the
    run log (appended to; each run starts with a PARAMETER line holding the command line and the flag values).
    From its start a preemption signal ends the job with exit status 75 (runcontrol.PREEMPTION).

    ``config_or_file``: a BertConfig or the path of its json file.
    Returns (BertConfig, distribution.Runtime, dllogger.RunLog).
    """
    import tensorflow as tf

    from biobert import distribution, modeling
    from biobert.config import BertConfig
    from biobert.dllogger import RunLog
    from biobert.runcontrol import PREEMPTION

    # From here SIGTERM/SIGUSR1 end the job with exit status 75 ("run it again"), after the training loop's
    # checkpoint when one is under way (runcontrol.PreemptionSignals).
    PREEMPTION.install()
    if isinstance(config_or_file, BertConfig):
        config, config_file = config_or_file, None
    else:
        config, config_file = BertConfig.from_json_file(config_or_file), config_or_file
    if settings.max_seq_length > config.max_position_embeddings:
        raise InputError(f"--max_seq_length {settings.max_seq_length} exceeds the model's max_position_embeddings "
                         f"{config.max_position_embeddings}", path=config_file)
    tf.keras.utils.set_random_seed(settings.seed)
    runtime = distribution.setup(amp=settings.amp, use_xla=settings.use_xla, horovod=settings.horovod,
                                 log=lambda text: print(text, flush=True))
    modeling.set_matmul_dtype(runtime.matmul_dtype)
    os.makedirs(settings.output_dir, exist_ok=True)
    log = RunLog(settings.dllog_path, enabled=runtime.is_chief)
    log.parameters(settings.parameters)
    return config, runtime, log
