"""A new user's first hour: flag checks before any work, quiet start-up, file modes, the run log's place,
progress lines, quick-check flags, and model files found beside the checkpoint (issue 47)."""
import json
import os
import re
import subprocess
import sys

import pytest

from helpers import REPO, tiny_config

from biobert import checkpoints, fileio, progress
from biobert import flags as biobert_flags
from biobert.cli import STARTUP_NOISE, filter_startup_noise
from biobert.errors import InputError


def run(argv, umask=None, env=None, timeout=600):
    full_env = dict(os.environ)
    full_env.pop("TF_CPP_MIN_LOG_LEVEL", None)     # what a user's shell has: the entry points must quiet TF
    full_env.pop("BIOBERT_VERBOSE", None)
    full_env.update(env or {})
    return subprocess.run([sys.executable] + [str(a) for a in argv], cwd=REPO, capture_output=True, text=True,
                          env=full_env, timeout=timeout,
                          preexec_fn=(lambda: os.umask(umask)) if umask is not None else None)


def assert_one_error_line(proc, fragment):
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], proc.stderr


# ---------------------------------------------------------------- flag checks (in process: every value)

class Flags(dict):
    """Stands in for absl's FLAGS in check(): ``name in FLAGS`` and attribute access."""
    __getattr__ = dict.__getitem__


def finetuning_flags(**over):
    values = dict(train_batch_size=32, eval_batch_size=8, predict_batch_size=8, max_seq_length=128,
                  num_accumulation_steps=1, iterations_per_loop=100, max_words=30, num_train_steps=None,
                  max_eval_examples=None, max_predict_examples=None, save_checkpoints_steps=1000,
                  learning_rate=5e-5, num_train_epochs=3.0, weight_decay_rate=0.01, warmup_proportion=0.1,
                  bert_config_file=None, vocab_file=None, bert_model=None, data_dir=None, init_checkpoint=None,
                  do_lower_case=True)
    values.update(over)
    return Flags(values)


def pretraining_flags(**over):
    values = dict(train_batch_size=32, eval_batch_size=8, max_seq_length=128, max_predictions_per_seq=20,
                  num_train_steps=100, num_warmup_steps=10, display_loss_steps=1, max_eval_steps=100,
                  num_accumulation_steps=1, save_checkpoints_steps=1000, learning_rate=5e-5, init_loss_scale=2.0 ** 32,
                  bert_config_file=None, init_checkpoint=None)
    values.update(over)
    return Flags(values)


def data_flags(**over):
    values = dict(max_seq_length=128, max_predictions_per_seq=20, masked_lm_prob=0.15, short_seq_prob=0.1,
                  dupe_factor=10, vocab_file=None, do_lower_case=True)
    values.update(over)
    return Flags(values)


@pytest.mark.parametrize("make, over, message", [
    (finetuning_flags, {"train_batch_size": 0}, "--train_batch_size must be positive, got 0"),
    (finetuning_flags, {"eval_batch_size": -8}, "--eval_batch_size must be positive"),
    (finetuning_flags, {"predict_batch_size": 0}, "--predict_batch_size must be positive"),
    (finetuning_flags, {"max_seq_length": 0}, "--max_seq_length must be positive"),
    (finetuning_flags, {"max_seq_length": 2}, "--max_seq_length must be at least 3"),
    (finetuning_flags, {"num_accumulation_steps": 0}, "--num_accumulation_steps must be positive"),
    (finetuning_flags, {"iterations_per_loop": 0}, "--iterations_per_loop must be positive"),
    (finetuning_flags, {"max_words": 0}, "--max_words must be positive"),
    (finetuning_flags, {"num_train_steps": 0}, "--num_train_steps must be positive"),
    (finetuning_flags, {"max_eval_examples": 0}, "--max_eval_examples must be positive"),
    (finetuning_flags, {"max_predict_examples": -1}, "--max_predict_examples must be positive"),
    (finetuning_flags, {"save_checkpoints_steps": -1}, "--save_checkpoints_steps must not be negative"),
    (finetuning_flags, {"learning_rate": -1e-5}, "--learning_rate must not be negative"),
    (finetuning_flags, {"num_train_epochs": 0.0}, "--num_train_epochs must be positive"),
    (finetuning_flags, {"weight_decay_rate": -0.1}, "--weight_decay_rate must not be negative"),
    (finetuning_flags, {"warmup_proportion": 1.5}, "--warmup_proportion must lie in [0, 1], got 1.5"),
    (finetuning_flags, {"warmup_proportion": -0.1}, "--warmup_proportion must lie in [0, 1]"),
    (finetuning_flags, {"bert_config_file": "/no/such/bert_config.json"}, "BERT config file not found"),
    (finetuning_flags, {"vocab_file": "/no/such/vocab.txt"}, "vocabulary file not found"),
    (finetuning_flags, {"data_dir": "/no/such/folder"}, "data directory not found"),
    (finetuning_flags, {"init_checkpoint": "/no/such/bert_model.ckpt"}, "--init_checkpoint not found"),
    (pretraining_flags, {"num_warmup_steps": -1}, "--num_warmup_steps must not be negative"),
    (pretraining_flags, {"max_predictions_per_seq": 200}, "--max_predictions_per_seq 200 exceeds --max_seq_length"),
    (pretraining_flags, {"display_loss_steps": 0}, "--display_loss_steps must be positive"),
    (pretraining_flags, {"max_eval_steps": 0}, "--max_eval_steps must be positive"),
    (pretraining_flags, {"init_loss_scale": 0.0}, "--init_loss_scale must be positive"),
    (data_flags, {"masked_lm_prob": 0.0}, "--masked_lm_prob must lie in (0, 1]"),
    (data_flags, {"masked_lm_prob": 1.5}, "--masked_lm_prob must lie in (0, 1]"),
    (data_flags, {"short_seq_prob": 2.0}, "--short_seq_prob must lie in [0, 1]"),
    (data_flags, {"dupe_factor": 0}, "--dupe_factor must be positive"),
])
def test_check_rejects_each_bad_value(make, over, message):
    biobert_flags.check(make())
    with pytest.raises(InputError) as caught:
        biobert_flags.check(make(**over))
    assert message in str(caught.value)


def test_warm_up_longer_than_training_is_a_warning(capsys):
    biobert_flags.check(pretraining_flags(num_warmup_steps=200, do_train=True))
    assert capsys.readouterr().err == ("warning: --num_warmup_steps 200 exceeds --num_train_steps 100: the learning "
                                       "rate never reaches --learning_rate\n")


def test_check_rejects_a_folder_without_a_checkpoint_and_both_config_sources(tmp_path, uncased_vocab):
    with pytest.raises(InputError, match="holds no model.safetensors and no 'checkpoint' file"):
        biobert_flags.check(finetuning_flags(init_checkpoint=str(tmp_path)))
    config = tmp_path / "bert_config.json"
    tiny_config().to_json_file(config)
    with pytest.raises(InputError, match="not both"):
        biobert_flags.check(finetuning_flags(bert_config_file=str(config), bert_model="tiny"))


def test_vocabulary_casing_must_match_do_lower_case(cased_vocab, uncased_vocab):
    assert biobert_flags.vocabulary_is_cased(cased_vocab) and not biobert_flags.vocabulary_is_cased(uncased_vocab)
    biobert_flags.check(finetuning_flags(vocab_file=str(uncased_vocab), do_lower_case=True))
    biobert_flags.check(finetuning_flags(vocab_file=str(cased_vocab), do_lower_case=False))
    with pytest.raises(InputError, match="vocabulary is cased .* --do_lower_case is true"):
        biobert_flags.check(finetuning_flags(vocab_file=str(cased_vocab), do_lower_case=True))
    with pytest.raises(InputError, match="vocabulary is uncased but --do_lower_case is false"):
        biobert_flags.check(finetuning_flags(vocab_file=str(uncased_vocab), do_lower_case=False))
    with pytest.raises(InputError, match="vocabulary is cased"):
        biobert_flags.check(data_flags(vocab_file=str(cased_vocab), do_lower_case=True))


def test_predicting_from_a_fine_tuned_folder_checks_the_vocabulary_against_its_casing(tmp_path, uncased_vocab):
    # Without --do_lower_case, predicting takes the casing model_info.json records (as finetuning.run does);
    # training takes the flag's.
    import shutil
    import types

    class Unset(Flags):
        def __getitem__(self, name):
            return types.SimpleNamespace(present=False) if name == "do_lower_case" else dict.__getitem__(self, name)

    shutil.copy(uncased_vocab, tmp_path / "vocab.txt")
    (tmp_path / "model.ckpt-1.index").write_bytes(b"")
    (tmp_path / "model_info.json").write_text('{"do_lower_case": true}')
    init = str(tmp_path / "model.ckpt-1")
    biobert_flags.check(Unset(finetuning_flags(init_checkpoint=init, do_lower_case=False)))
    with pytest.raises(InputError, match="vocabulary is uncased but --do_lower_case is false"):
        biobert_flags.check(Unset(finetuning_flags(init_checkpoint=init, do_lower_case=False, do_train=True)))
    (tmp_path / "model_info.json").write_text("[1")
    with pytest.raises(InputError, match="not a model info file"):
        biobert_flags.check(Unset(finetuning_flags(init_checkpoint=init, do_lower_case=False)))


# ---------------------------------------------------------------- flag checks (each entry point, end to end)

def test_entry_points_stop_with_one_error_line_before_writing(tmp_path, uncased_vocab, cased_vocab, ner_slice):
    out = tmp_path / "out"
    ner = ["run_ner.py", "--do_train", f"--data_dir={ner_slice['data']}", f"--bert_config_file={ner_slice['config']}",
           f"--vocab_file={ner_slice['vocab']}", f"--output_dir={out}"]
    assert_one_error_line(run(ner + ["--train_batch_size=0"]), "--train_batch_size must be positive, got 0")
    assert_one_error_line(run(ner + ["--train_batch_size=abc"]), "flag --train_batch_size=abc")
    assert_one_error_line(run(["run_re.py", "--do_train", f"--data_dir={tmp_path}", "--bert_model=tiny",
                               f"--vocab_file={cased_vocab}", f"--output_dir={out}"]),
                          "the vocabulary is cased")
    assert_one_error_line(run(["run_pretraining.py", "--do_train", f"--input_files_dir={tmp_path}",
                               f"--init_checkpoint={tmp_path / 'missing' / 'model.ckpt-5'}", f"--output_dir={out}"]),
                          "--init_checkpoint not found")
    assert_one_error_line(run(["create_pretraining_data.py", f"--input_file={tmp_path}/x.txt",
                               f"--output_file={out}/x.tfrecord", f"--vocab_file={uncased_vocab}",
                               "--masked_lm_prob=1.5"]), "--masked_lm_prob must lie in (0, 1]")
    assert not out.exists(), "nothing may be written before the flags are checked"
    help_run = run(["run_ner.py", "--help"])
    assert help_run.returncode == 0 and "--ner_label_scheme" in help_run.stdout and help_run.stderr == ""


# ---------------------------------------------------------------- a default run: quiet, readable files, progress

@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, ner_slice):
    """run_ner.py with --bert_model=tiny, 3 steps, capped eval/predict, under umask 022, progress on every batch."""
    out = tmp_path_factory.mktemp("tiny") / "out"
    proc = run(["run_ner.py", "--do_train", "--do_eval", "--do_predict", f"--data_dir={ner_slice['data']}",
                "--bert_model=tiny", f"--vocab_file={ner_slice['vocab']}", f"--output_dir={out}",
                "--train_batch_size=8", "--num_train_steps=3", "--max_eval_examples=10", "--max_predict_examples=12",
                "--eval_batch_size=4", "--predict_batch_size=4", "--nouse_xla"],
               umask=0o022, env={"BIOBERT_PROGRESS_SECONDS": "0"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out, proc


def test_default_run_prints_no_tensorflow_startup_noise(tiny_run):
    _, proc = tiny_run
    assert not [line for line in (proc.stdout + proc.stderr).splitlines() if STARTUP_NOISE.search(line)]
    assert proc.stderr == "", proc.stderr


def test_output_files_are_readable_as_the_umask_allows(tiny_run):
    out, _ = tiny_run
    names = sorted(os.listdir(out))
    for name in ("bert_config.json", "checkpoint", "eval_results.txt", "label_map.json", "test_labels.txt",
                 "test_results_conlleval.txt", "bert_dllog.json", "model.ckpt-3.index"):
        assert name in names
    modes = {}
    for folder, subfolders, files in os.walk(out):     # every file, the TensorBoard events too; folders 0755
        modes.update({os.path.join(folder, n): oct(os.stat(os.path.join(folder, n)).st_mode & 0o777) for n in files})
        assert all(os.stat(os.path.join(folder, d)).st_mode & 0o777 == 0o755 for d in subfolders), subfolders
    assert set(modes.values()) == {"0o644"}, modes


def test_run_log_defaults_to_output_dir_and_quick_check_flags_apply(tiny_run):
    out, proc = tiny_run
    records = [json.loads(line[len("DLLL "):]) for line in (out / "bert_dllog.json").read_text().splitlines()]
    assert records[0]["type"] == "PARAMETER" and "run_ner.py" in records[0]["data"]["command"]
    assert "global_step = 3\n" in (out / "eval_results.txt").read_text()
    assert json.loads((out / "bert_config.json").read_text())["hidden_size"] == 128
    assert re.search(r"^examples: train \d+, eval 10, test 12 ", proc.stdout, re.M), proc.stdout
    eval_lines = re.findall(r"^eval: (\d+)/10 examples", proc.stdout, re.M)
    assert eval_lines == ["4", "8", "10"], proc.stdout
    assert re.findall(r"^test: (\d+)/12 examples", proc.stdout, re.M) == ["4", "8", "12"]


def test_verbose_shows_what_tensorflow_prints():
    code = "import os, biobert.cli; print(os.environ.get('TF_CPP_MIN_LOG_LEVEL'))"
    quiet = run(["-c", code])
    assert quiet.stdout.strip() == "2" and quiet.stderr == ""
    loud = run(["-c", code], env={"BIOBERT_VERBOSE": "1"})
    raw = run(["-c", "import tensorflow as tf; tf.config.list_physical_devices()"])
    assert loud.stdout.strip() == "None"
    strip = lambda text: [re.sub(r"[\d.:]+ +\d+ ", "", line) for line in text.splitlines()]  # noqa: E731
    assert strip(loud.stderr) == strip(raw.stderr)


def test_filter_keeps_what_matters():
    text = ("WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
            "I0000 00:00:1796376394.676803    6206 cudart_stub.cc:31] Could not find cuda drivers on your machine, "
            "GPU will not be used.\n"
            "E0000 00:00:1796376398.678089    6206 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error\n"
            "E0000 00:00:1796376398.678089    6206 something.cc:1] out of memory\n")
    assert filter_startup_noise(text) == ["E0000 00:00:1796376398.678089    6206 something.cc:1] out of memory"]


# ---------------------------------------------------------------- units

@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_atomic_files_get_the_mode_open_would_give(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        fileio.atomic_write_text(tmp_path / "new.txt", "x\n")
        with open(tmp_path / "plain.txt", "w") as handle:
            handle.write("x\n")
    finally:
        os.umask(old)
    assert os.stat(tmp_path / "new.txt").st_mode & 0o777 == mode
    assert os.stat(tmp_path / "plain.txt").st_mode & 0o777 == mode
    os.chmod(tmp_path / "new.txt", 0o640)
    fileio.atomic_write_text(tmp_path / "new.txt", "y\n")
    assert os.stat(tmp_path / "new.txt").st_mode & 0o777 == 0o640, "replacing keeps the file's mode, as open()"
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_progress_prints_at_most_every_interval():
    now = [0.0]
    lines = []
    p = progress.Progress("eval", total=100, every=30, emit=lines.append, clock=lambda: now[0])
    for done, t in ((10, 5.0), (20, 31.0), (30, 40.0), (60, 61.0)):
        now[0] = t
        p.update(done)
    assert lines == ["eval: 20/100 examples (20%), 0.6 examples/s", "eval: 60/100 examples (60%), 1.0 examples/s"]


def test_model_files_come_from_beside_the_checkpoint(tmp_path):
    hf = tmp_path / "hf"
    hf.mkdir()
    for name in ("model.safetensors", "config.json", "vocab.txt"):
        (hf / name).write_text("")
    assert checkpoints.model_files(str(hf)) == {"config": str(hf / "config.json"), "vocab": str(hf / "vocab.txt")}
    tf1 = tmp_path / "phase1"
    tf1.mkdir()
    (tf1 / "model.ckpt-10.index").write_text("")
    (tf1 / "bert_config.json").write_text("")
    found = checkpoints.model_files(str(tf1 / "model.ckpt-10"))
    assert found == {"config": str(tf1 / "bert_config.json"), "vocab": None}
    assert checkpoints.model_files(None) == {"config": None, "vocab": None}


def test_phase_2_from_our_checkpoint_needs_no_config_flag(tmp_path, records):
    """Phase 1 leaves bert_config.json beside its checkpoint; phase 2 given only that checkpoint uses it."""
    from biobert import modeling
    from biobert.config import BertConfig

    p1, p2 = tmp_path / "p1", tmp_path / "p2"
    config = BertConfig.from_json_file(records["config"])
    model = modeling.build(modeling.BertPretrainer(config))
    checkpoints.save_checkpoint(str(p1), 7, modeling.variable_map(model))
    config.to_json_file(p1 / "bert_config.json")
    proc = run(["run_pretraining.py", f"--input_files_dir={records[2]['train']}", f"--output_dir={p2}",
                f"--init_checkpoint={p1 / 'model.ckpt-7'}", "--max_seq_length=128", "--max_predictions_per_seq=20",
                "--do_train", "--train_batch_size=4", "--num_train_steps=1", "--num_warmup_steps=0", "--nouse_xla",
                "--noamp"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"loaded {len(modeling.variable_map(model))} variables from {p1 / 'model.ckpt-7'}" in proc.stdout
    assert (p2 / "bert_config.json").read_text() == (p1 / "bert_config.json").read_text()
