"""run_ner.py end to end on slices of the real BC5CDR files, with a tiny BERT config (subprocesses)."""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from helpers import run_python

from biobert import conlleval, ner

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_ner(args, check=True):
    return run_python([os.path.join(REPO, "run_ner.py")] + args, check=check)


def base_args(s, out, **extra):
    args = {"data_dir": s["data"], "bert_config_file": s["config"], "vocab_file": s["vocab"], "output_dir": out,
            "dllog_path": os.path.join(out, "dllog.json"), "train_batch_size": 16, "learning_rate": 3e-3,
            "eval_batch_size": 16, "predict_batch_size": 16, "iterations_per_loop": 1}
    args.update(extra)
    return [f"--{k}={v}" for k, v in args.items()]


def dllog(path):
    return [json.loads(line[5:]) for line in open(path, encoding="utf-8") if line.startswith("DLLL ")]


@pytest.fixture(scope="module")
def trained(ner_slice, tmp_path_factory):
    """One tiny model trained, evaluated and predicted for the module (6 epochs): (output folder, stdout)."""
    out = str(tmp_path_factory.mktemp("ner_trained") / "out")
    proc = run_ner(base_args(ner_slice, out, num_train_epochs=6) + ["--do_train", "--do_eval", "--do_predict",
                                                                    "--noamp", "--nouse_xla"])
    return out, proc


def test_train_eval_predict_writes_every_output(ner_slice, trained):
    out, proc = trained
    for name in ("eval_results.txt", "label_test.txt", "test_labels.txt", "test_labels_errs.txt",
                 "test_results_conlleval.txt", "label_map.json", "bert_config.json", "checkpoint"):
        assert os.path.isfile(os.path.join(out, name)), name
    assert "length-grouped batches" in proc.stdout                 # run_ner's default order
    logs = dllog(os.path.join(out, "dllog.json"))
    losses = [r["data"]["loss"] for r in logs if r["type"] == "LOG" and "loss" in r["data"]]
    assert len(losses) == 6 * ner_slice["steps_per_epoch"]          # train + devel pieces, batch 16
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])
    # The printed summary is conlleval's, over the 60 test sentences, words kept in order.
    assert re.search(r"processed \d+ tokens with \d+ phrases; found: \d+ phrases; correct: \d+\.", proc.stdout)
    test = ner.read_ner_file(ner_slice["data"] / "test.tsv", max_words=None)
    rows = [line.split() for line in open(os.path.join(out, "test_labels.txt"), encoding="utf-8")]
    words = [r for r in rows if r]
    assert [w[0] for w in words] == [w for s in test for w in s.words]
    assert [w[1] for w in words] == [label for s in test for label in s.labels]
    assert sum(1 for r in rows if not r) == len(test)
    counts = conlleval.evaluate(open(os.path.join(out, "test_labels.txt"), encoding="utf-8"))
    assert open(os.path.join(out, "test_results_conlleval.txt"), encoding="utf-8").read() == conlleval.report(counts)
    results = dict(line.strip().split(" = ") for line in open(os.path.join(out, "eval_results.txt")))
    assert int(results["global_step"]) == 6 * ner_slice["steps_per_epoch"]
    # Quality: well above chance. Chance is the F1 of the model's own test predictions shuffled across the words
    # (the same number of B and I tags, placed at random): a few points. The devel sentences were trained on.
    rng = np.random.default_rng(0)
    chance = []
    for _ in range(20):
        shuffled = iter(rng.permutation([w[2] for w in words]))
        chance.append(conlleval.metrics(conlleval.evaluate(
            [f"{r[0]} {r[1]} {next(shuffled)}" if r else "" for r in rows]))["f1"])
    test_f1 = conlleval.metrics(counts)["f1"]
    assert test_f1 > max(15.0, 3 * np.mean(chance)), (test_f1, np.mean(chance))
    assert float(results["eval_f1"]) > max(30.0, 3 * np.mean(chance)), results
    num_labels = len(json.load(open(os.path.join(out, "label_map.json")))["labels"])
    assert float(results["eval_loss"]) < 0.5 * np.log(num_labels)              # ln 7 for a uniform guess
    assert json.load(open(os.path.join(out, "label_map.json")))["labels"][:4] == ["[PAD]", "B", "I", "O"]
    # label_test.txt: one label per non-pad position of every (30-word-split) test sentence.
    positions = sum(1 for _ in open(os.path.join(out, "label_test.txt"), encoding="utf-8"))
    assert positions > len(words)


def test_killed_run_resumes_at_saved_step(ner_slice, tmp_path):
    out = str(tmp_path / "out")
    args = base_args(ner_slice, out, num_train_epochs=4, save_checkpoints_steps=20) + [
        "--do_train", "--noamp", "--nouse_xla"]
    total = 4 * ner_slice["steps_per_epoch"]
    proc = subprocess.Popen([sys.executable, os.path.join(REPO, "run_ner.py")] + args, cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if os.path.exists(os.path.join(out, "checkpoint")):
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with open(os.path.join(out, "checkpoint")) as handle:
        saved = int(re.search(r'model_checkpoint_path: "model.ckpt-(\d+)"', handle.read()).group(1))
    assert 0 < saved < total, "the run finished before it could be interrupted"
    steps_before = [r["step"] for r in dllog(os.path.join(out, "dllog.json")) if r["type"] == "LOG"
                    and "loss" in r["data"]]
    resumed = run_ner(args)
    assert f"resuming from {os.path.join(out, f'model.ckpt-{saved}')} at step {saved}" in resumed.stdout
    steps_after = [r["step"] for r in dllog(os.path.join(out, "dllog.json")) if r["type"] == "LOG"
                   and "loss" in r["data"]][len(steps_before):]
    assert steps_after == list(range(saved + 1, total + 1))
    assert open(os.path.join(out, "checkpoint")).readline().strip() == f'model_checkpoint_path: "model.ckpt-{total}"'


def copy_slice(ner_slice, folder, edit=None, transform=None, end="\n", bom=False):
    """The slice's three files in ``folder``; ``edit`` = (file name, 1-based line, new columns(old columns)),
    ``transform`` = lines -> lines for every file."""
    folder.mkdir()
    for name in ("train.tsv", "devel.tsv", "test.tsv"):
        lines = (ner_slice["data"] / name).read_text(encoding="utf-8").splitlines()
        if edit and edit[0] == name:
            lines[edit[1] - 1] = "\t".join(edit[2](lines[edit[1] - 1].split("\t")))
        if transform:
            lines = transform(lines)
        text = "".join(line + end for line in lines)
        (folder / name).write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))
    return folder


def error_lines(proc):
    return [line for line in proc.stderr.splitlines() if line.startswith("error:")]


@pytest.mark.parametrize("name, line, edit, fragment", [
    ("train.tsv", 7, lambda cols: cols[:3], "expected 4 tab-separated columns (as on line 1, the file's first token "
                                            "line), found 3: 'clonidine\\t-\\t49'"),     # the tag column lost
    ("train.tsv", 7, lambda cols: cols[:3] + ["b"], "tag 'b' is not O, B, I, B-<type> or I-<type> (lower case); "
                                                   "tags in train.tsv: O "),
    ("train.tsv", 2, lambda cols: [" ".join(cols)], "found 1: 'reverses - 9 O' (spaces where the file has tabs?)"),
    ("devel.tsv", 3, lambda cols: cols[:3] + ["B-"], "tag 'B-' is not O, B, I, B-<type> or I-<type>"),
    ("devel.tsv", 1, lambda cols: cols[:3] + ["B-Chemical"], "tag 'B-Chemical' is typed but the other B/I tags "
                                                            "are bare"),
    ("test.tsv", 4, lambda cols: cols[:3] + ["49"], "label '49' is not in the label set B, I, O (built from the "
                                                   "training data); declare the label set with --labels"),
    ("test.tsv", 5, lambda cols: cols + ["O"], "found 5"),
])
def test_malformed_corpus_stops_at_its_line_and_writes_nothing(ner_slice, tmp_path, name, line, edit, fragment):
    data = copy_slice(ner_slice, tmp_path / "bad", edit=(name, line, edit))
    out = tmp_path / "out"
    proc = run_ner(base_args(ner_slice, str(out), data_dir=data) + ["--do_train", "--do_eval", "--do_predict",
                                                                    "--noamp", "--nouse_xla"], check=False)
    assert proc.returncode == 1, proc.stderr
    assert error_lines(proc) == [line for line in proc.stderr.splitlines() if line.strip()], proc.stderr
    (error,) = error_lines(proc)
    assert error.startswith(f"error: {data / name}:{line}: ") and fragment in error, error
    assert not os.path.exists(out)                       # no output folder, no run log, no label map
    assert "label set" not in proc.stdout


def test_accepted_variants_train_and_log_the_label_set(ner_slice, tmp_path):
    """2-column space-separated, typed tags, CRLF line ends and a byte-order mark: trained and predicted; the
    log lists the label set with each label's count in train + devel before the first step."""
    def variant(lines):
        out = []
        for line in lines:
            cols = line.split("\t")
            out.append(f"{cols[0]} {cols[-1] if cols[-1] in ('O', '') else cols[-1] + '-Chemical'}" if line else "")
        return out

    data = copy_slice(ner_slice, tmp_path / "typed", transform=variant, end="\r\n", bom=True)
    out = tmp_path / "out"
    proc = run_ner(base_args(ner_slice, str(out), data_dir=data, num_train_steps=2)
                   + ["--do_train", "--do_predict", "--noamp", "--nouse_xla", "--max_predict_examples=8"])
    labels = json.load(open(out / "label_map.json"))["labels"]
    assert labels == ["[PAD]", "B-Chemical", "I-Chemical", "O", "X", "[CLS]", "[SEP]"]
    reference = [s for name in ("train.tsv", "devel.tsv") for s in ner.read_ner_file(ner_slice["data"] / name)]
    counts = {tag + ("-Chemical" if tag != "O" else ""): sum(s.labels.count(tag) for s in reference)
              for tag in ("B", "I", "O")}
    total = sum(counts.values())
    line = next(x for x in proc.stdout.splitlines() if x.startswith("label set"))
    assert line == ("label set (built from the training data), 3 labels, with their counts in the training data: "
                    + ", ".join(f"{k} {n} ({100 * n / total:.1f}%)" for k, n in counts.items()))
    assert proc.stdout.index(line) < proc.stdout.index("training from step 0")
    record = next(r for r in dllog(out / "dllog.json") if "train_label_counts" in r["data"])
    assert record["data"]["train_label_counts"] == counts
    words = [row.split()[0] for row in open(out / "test_labels.txt", encoding="utf-8") if row.strip()]
    assert words[0] == ner.read_ner_file(ner_slice["data"] / "test.tsv")[0].words[0]     # no byte-order mark


def test_declared_label_set_admits_a_stray_tag(ner_slice, tmp_path):
    data = copy_slice(ner_slice, tmp_path / "lower", edit=("train.tsv", 7, lambda cols: cols[:3] + ["b"]))
    listed = tmp_path / "labels.txt"
    listed.write_text("O\nB\nI\nb\n", encoding="utf-8")
    out = tmp_path / "out"
    proc = run_ner(base_args(ner_slice, str(out), data_dir=data, num_train_steps=1, labels=listed)
                   + ["--do_train", "--noamp", "--nouse_xla"])
    assert json.load(open(out / "label_map.json"))["labels"] == ["[PAD]", "B", "I", "O", "b", "X", "[CLS]", "[SEP]"]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("label set"))
    assert line.startswith("label set (declared by --labels), 4 labels, with their counts in the training data: ")
    assert re.search(r", b 1 \(\d+\.\d%\)$", line), line
    # The same output folder with another declared set: refused before anything changes.
    before = sorted(os.listdir(out)), (out / "dllog.json").read_bytes()
    proc = run_ner(base_args(ner_slice, str(out), data_dir=data, labels="B,I,O")
                   + ["--do_train", "--noamp", "--nouse_xla"], check=False)
    assert proc.returncode == 1 and error_lines(proc) == [
        f"error: {out / 'label_map.json'}: --labels gives B, I, O but the model here was trained with B, I, O, b "
        "(use another output_dir to train a new label set)"]
    assert (sorted(os.listdir(out)), (out / "dllog.json").read_bytes()) == before


def test_unknown_test_label_and_mismatched_checkpoint(ner_slice, trained, tmp_path):
    out = str(tmp_path / "out")
    shutil.copytree(trained[0], out)                          # the module's trained model, in a folder of its own
    # Evaluating it alone reports the step it was saved at.
    os.remove(os.path.join(out, "eval_results.txt"))
    run_ner(base_args(ner_slice, out) + ["--do_eval", "--noamp"])
    steps = 6 * ner_slice["steps_per_epoch"]
    assert f"global_step = {steps}\n" in open(os.path.join(out, "eval_results.txt"), encoding="utf-8").read()
    # Predicting with a bigger model config than the checkpoint in output_dir: one clear message.
    bigger = tmp_path / "bigger.json"
    cfg = json.load(open(ner_slice["config"]))
    cfg["hidden_size"], cfg["intermediate_size"] = 48, 96
    bigger.write_text(json.dumps(cfg))
    proc = run_ner(base_args(ner_slice, out, bert_config_file=bigger) + ["--do_predict", "--noamp"], check=False)
    assert proc.returncode == 1
    assert "checkpoint does not fit the model configuration" in proc.stderr
    assert "bert/embeddings/word_embeddings: checkpoint [28996, 32] vs model [28996, 48]" in proc.stderr
    # A test file with a tag the model never saw.
    data = tmp_path / "typed"
    data.mkdir()
    (data / "test.tsv").write_text("Aspirin\tB-Drug\n\n", encoding="utf-8")
    proc = run_ner(base_args(ner_slice, out, data_dir=data) + ["--do_predict", "--noamp"], check=False)
    assert proc.returncode == 1 and f"{data / 'test.tsv'}:1" in proc.stderr and "B-Drug" in proc.stderr


def test_label_schemes_weight_the_loss(ner_slice):
    from biobert import tasks
    from biobert.tokenization import FullTokenizer

    tokenizer = FullTokenizer(str(ner_slice["vocab"]), do_lower_case=False)
    sentences = ner.read_ner_file(ner_slice["data"] / "test.tsv")[:20]
    weights = {}
    for scheme in ("first_subword", "original"):
        task = tasks.NerTask(scheme)
        task.label_map = ner.LabelMap.from_sentences([sentences])
        feats = task.features(sentences, tokenizer, 128)
        weights[scheme] = feats
        for f in feats:
            expected = f["first_subword"] if scheme == "first_subword" else np.ones(len(f["input_ids"]))
            np.testing.assert_array_equal(f["loss_weights"], expected)
    # Same features otherwise: the label ids keep X, [CLS] and [SEP] in both schemes.
    for a, b in zip(weights["first_subword"], weights["original"]):
        np.testing.assert_array_equal(a["label_ids"], b["label_ids"])
    x_id = ner.LabelMap.from_sentences([sentences]).id("X")
    assert any((f["label_ids"] == x_id).any() for f in weights["original"])
