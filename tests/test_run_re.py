"""run_re.py end to end on slices of the formatted real ChemProt corpus, tiny BERT config; re_eval on its output."""
import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from helpers import run_python, tiny_config

from biobert import re_eval, relation

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


python = run_python


@pytest.fixture(scope="module")
def chemprot(shared_data, uncased_vocab, tmp_path_factory):
    root = tmp_path_factory.mktemp("chemprot")
    full = root / "full"
    python([os.path.join(REPO, "data", "ChemProtTextFormatting.py"),
            f"--input_folder={shared_data / 'ChemProt_Corpus'}", f"--output_folder={full}", "--splits=dev,test"])
    data = root / "slice"
    data.mkdir()
    rows = {s: (full / f"{s}.tsv").read_text(encoding="utf-8").splitlines() for s in ("dev", "test")}
    # Train on 320 dev rows (positives first so every class is present), evaluate on 64 others, predict 80 test rows.
    dev = rows["dev"][1:]
    positives = [r for r in dev if not r.endswith("\tfalse")]
    negatives = [r for r in dev if r.endswith("\tfalse")]
    train = positives[:160] + negatives[:160]
    header = rows["dev"][0]
    (data / "train.tsv").write_text("\n".join([header] + train) + "\n", encoding="utf-8")
    (data / "dev.tsv").write_text("\n".join([header] + positives[160:192] + negatives[160:192]) + "\n", encoding="utf-8")
    (data / "test.tsv").write_text("\n".join(rows["test"][:81]) + "\n", encoding="utf-8")
    config = root / "bert_config.json"
    tiny_config(vocab_size=30522, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0).to_json_file(config)
    return {"data": data, "config": config, "vocab": uncased_vocab}


def test_train_eval_predict_and_re_eval(chemprot, tmp_path):
    out = tmp_path / "out"
    proc = python([os.path.join(REPO, "run_re.py"), "--task_name=chemprot", "--do_train", "--do_eval",
                   "--do_predict", f"--data_dir={chemprot['data']}", f"--bert_config_file={chemprot['config']}",
                   f"--vocab_file={chemprot['vocab']}", f"--output_dir={out}", f"--dllog_path={out / 'dllog.json'}",
                   "--train_batch_size=16", "--learning_rate=2e-3", "--num_train_epochs=8", "--iterations_per_loop=1",
                   "--noamp", "--nouse_xla"])
    assert "plainly shuffled batches, each computed in 2 length-sorted parts of 8 rows" in proc.stdout
    rows = [json.loads(line[5:]) for line in open(out / "dllog.json") if line.startswith("DLLL ")]
    losses = [r["data"]["loss"] for r in rows if r["type"] == "LOG" and "loss" in r["data"]]
    assert len(losses) == 8 * (320 // 16)
    assert np.mean(losses[-10:]) < 0.7 * np.mean(losses[:10])
    # Linear warm-up over 10% of the 160 steps (update k from 0 at k / 16 of the peak: the first at 0, as Google's
    # and Hugging Face's), then from the peak linearly to 0 (not Google's 0.9 x peak).
    rates = [r["data"]["learning_rate"] for r in rows if r["type"] == "LOG" and "learning_rate" in r["data"]]
    expected_rates = [2e-3 * (k / 16 if k < 16 else (160 - k) / 144) for k in range(160)]
    np.testing.assert_allclose(rates, expected_rates, rtol=1e-5)
    results = dict(line.strip().split(" = ") for line in open(out / "eval_results.txt"))
    for key in ("eval_accuracy", "eval_loss", "eval_f1", "eval_precision", "eval_recall", "global_step"):
        assert key in results
    probs = np.loadtxt(out / "test_results.tsv", delimiter="\t")
    assert probs.shape == (80, 6)
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
    # re_eval reads the two files and reports the same micro-F1 as computed from the probabilities here.
    gold = [e.label for e in relation.read_re_tsv(chemprot["data"] / "test.tsv")]
    expected = re_eval.evaluate([relation.LABELS[i] for i in probs.argmax(1)], gold)
    proc = python([os.path.join(REPO, "biobert", "re_eval.py"), "--task=chemprot",
                   f"--output_path={out / 'test_results.tsv'}", f"--answer_path={chemprot['data'] / 'test.tsv'}"])
    assert f"f1 score : {100 * expected['f1']:.2f}%" in proc.stdout


def test_interrupted_run_resumes_with_the_same_batch_parts(chemprot, tmp_path):
    # Killed after its first checkpoint, a run resumes at the saved step and trains on the same stream of
    # length-sorted parts (4 micro-batches a step), with the same dropout masks, as an uninterrupted run: the
    # same loss at every later step.
    config = tmp_path / "bert_config.json"
    tiny_config(vocab_size=30522, hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1).to_json_file(config)

    def args(out):
        return [os.path.join(REPO, "run_re.py"), "--do_train", f"--data_dir={chemprot['data']}",
                f"--bert_config_file={config}", f"--vocab_file={chemprot['vocab']}",
                f"--output_dir={out}", f"--dllog_path={out / 'dllog.json'}", "--train_batch_size=32",
                "--learning_rate=2e-3", "--num_train_epochs=2", "--iterations_per_loop=1",
                "--save_checkpoints_steps=5", "--noamp", "--nouse_xla"]

    def step_losses(out):
        rows = [json.loads(line[5:]) for line in open(out / "dllog.json") if line.startswith("DLLL ")]
        return {r["step"]: r["data"]["loss"] for r in rows if r["type"] == "LOG" and "loss" in r["data"]}

    whole = tmp_path / "whole"
    proc = python(args(whole))
    assert "plainly shuffled batches, each computed in 4 length-sorted parts of 8 rows" in proc.stdout
    total = 2 * (320 // 32)
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable] + args(out), cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None and not (out / "checkpoint").exists():
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    saved = int(re.search(r"model.ckpt-(\d+)", (out / "checkpoint").read_text()).group(1))
    assert 0 < saved < total, "the run finished before it could be interrupted"
    resumed = python(args(out))
    assert f"resuming from {out / f'model.ckpt-{saved}'} at step {saved}" in resumed.stdout
    expected, got = step_losses(whole), step_losses(out)
    assert sorted(expected) == list(range(1, total + 1)) and sorted(got)[-1] == total
    later = list(range(saved + 1, total + 1))
    np.testing.assert_allclose([got[s] for s in later], [expected[s] for s in later], rtol=1e-5)


@pytest.mark.parametrize("flag,order", [
    ("--group_by_length", "length-grouped batches"),
    ("--use_xla", "plainly shuffled batches, each computed in 4 length-sorted parts of 8 rows (accumulated)")])
def test_other_batch_orders_train(chemprot, tmp_path, flag, order):
    # --group_by_length: run_ner.py's order; under XLA the parts are accumulated one by one (a step still
    # consumes one batch: 10 steps an epoch).
    out = tmp_path / "out"
    proc = python([os.path.join(REPO, "run_re.py"), "--do_train", f"--data_dir={chemprot['data']}",
                   f"--bert_config_file={chemprot['config']}", f"--vocab_file={chemprot['vocab']}",
                   f"--output_dir={out}", f"--dllog_path={out / 'dllog.json'}", "--train_batch_size=32",
                   "--learning_rate=2e-3", "--num_train_epochs=1", "--iterations_per_loop=1", "--noamp", flag])
    assert order in proc.stdout
    assert ("accumulating 4 micro-batch(es) per step" in proc.stdout) == (flag == "--use_xla")
    rows = [json.loads(line[5:]) for line in open(out / "dllog.json") if line.startswith("DLLL ")]
    assert [r["step"] for r in rows if r["type"] == "LOG" and "loss" in r["data"]] == list(range(1, 11))


def test_unknown_relation_label_stops_with_line(chemprot, tmp_path):
    data = tmp_path / "bad"
    data.mkdir()
    lines = (chemprot["data"] / "train.tsv").read_text(encoding="utf-8").splitlines()
    lines[5] = lines[5].rsplit("\t", 1)[0] + "\tCPR:10"
    (data / "train.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    proc = python([os.path.join(REPO, "run_re.py"), "--do_train", f"--data_dir={data}",
                   f"--bert_config_file={chemprot['config']}", f"--vocab_file={chemprot['vocab']}",
                   f"--output_dir={tmp_path / 'out'}", f"--dllog_path={tmp_path / 'out' / 'dllog.json'}"],
                  check=False)
    assert proc.returncode == 1
    assert f"{data / 'train.tsv'}:6" in proc.stderr and "CPR:10" in proc.stderr


def test_predict_file_with_spans_or_masks(chemprot, shared_data, tmp_path):
    """run_re.py --predict_file from the fine-tuned folder alone: real test pairs given as the original sentence
    with the two mentions' character spans give the probabilities of the same pairs in the masked form."""
    model = tmp_path / "model"
    python([os.path.join(REPO, "run_re.py"), "--do_train", f"--data_dir={chemprot['data']}",
            f"--bert_config_file={chemprot['config']}", f"--vocab_file={chemprot['vocab']}", f"--output_dir={model}",
            f"--dllog_path={model / 'dllog.json'}", "--train_batch_size=16", "--learning_rate=2e-3",
            "--num_train_epochs=2", "--iterations_per_loop=50", "--noamp", "--nouse_xla"])
    mentions = {}
    entities = shared_data / "ChemProt_Corpus" / "chemprot_test_gs" / "chemprot_test_entities_gs.tsv"
    for line in entities.read_text(encoding="utf-8").splitlines():
        pmid, tid, _, _, _, text = line.split("\t")
        mentions[pmid, tid] = text
    rows = [r.split("\t") for r in (chemprot["data"] / "test.tsv").read_text(encoding="utf-8").splitlines()[1:41]]
    masked, spans = [], []
    for index, sentence, _ in rows:
        pmid, chem, gene = index.split(".")
        text, found = sentence, {}
        # Put the mentions back, left to right, remembering where each one lands.
        while "@CHEMICAL$" in text or "@GENE$" in text:
            c, g = text.find("@CHEMICAL$"), text.find("@GENE$")
            mask, tid, key = (("@CHEMICAL$", chem, "chemical") if g < 0 or 0 <= c < g else ("@GENE$", gene, "gene"))
            at = text.index(mask)
            text = text[:at] + mentions[pmid, tid] + text[at + len(mask):]
            found[key] = [at, at + len(mentions[pmid, tid])]
        masked.append({"id": index, "text": sentence})
        spans.append({"id": index, "text": text, **found})
    path = tmp_path / "pairs.jsonl"
    lines = [json.dumps(r) for r in spans[:20]] + [""] + [json.dumps(r) for r in spans[20:] + masked]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "pred"
    python([os.path.join(REPO, "run_re.py"), "--do_predict", f"--predict_file={path}", f"--init_checkpoint={model}",
            f"--output_dir={out}", f"--dllog_path={out / 'dllog.json'}", "--noamp", "--nouse_xla"])
    records = [json.loads(line) for line in open(out / "predictions.jsonl", encoding="utf-8")]
    assert [r["id"] for r in records] == [r["id"] for r in spans[:20]] + [21] + [r["id"] for r in spans[20:] + masked]
    assert records[20] == {"id": 21, "text": "", "label": None, "probabilities": {}}
    records = records[:20] + records[21:]
    for record, given in zip(records[:40], spans):
        assert record["chemical"] == given["chemical"] and record["gene"] == given["gene"]
        pmid, chem, _ = given["id"].split(".")
        assert record["text"][slice(*given["chemical"])] == mentions[pmid, chem]
    for with_spans, with_masks in zip(records[:40], records[40:]):
        assert list(with_spans["probabilities"]) == relation.LABELS
        assert sum(with_spans["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
        assert with_spans["label"] == max(with_spans["probabilities"], key=with_spans["probabilities"].get)
        assert with_spans["probabilities"] == pytest.approx(with_masks["probabilities"], abs=1e-5)
    assert len({r["label"] for r in records}) >= 2 or len({json.dumps(r["probabilities"]) for r in records}) > 10
    # The exported model, reloaded in a fresh process without this project, gives the same probabilities.
    export_dir = tmp_path / "exported"
    python([os.path.join(REPO, "run_re.py"), f"--export_dir={export_dir}", f"--init_checkpoint={model}",
            f"--output_dir={tmp_path / 'export_out'}", f"--dllog_path={tmp_path / 'export.json'}", "--noamp"])
    for name in ("saved_model.pb", "vocab.txt", "bert_config.json"):
        assert (export_dir / name).is_file(), name
    serve = ("import json, sys, tensorflow as tf, tensorflow_text\n"
             "m = tf.saved_model.load(sys.argv[1])\n"
             "out = m.signatures['serving_default'](text=tf.constant(json.loads(sys.argv[2])))\n"
             "assert not any(n.startswith('biobert') for n in sys.modules)\n"
             "print(json.dumps([out['probabilities'].numpy().tolist(), out['label_id'].numpy().tolist()]))")
    proc = python(["-c", serve, export_dir, json.dumps([r["text"] for r in masked])])
    probabilities, label_ids = json.loads(proc.stdout.strip().splitlines()[-1])
    for served, label_id, record in zip(probabilities, label_ids, records[40:]):
        assert served == pytest.approx([record["probabilities"][k] for k in relation.LABELS], abs=1e-4)
        assert relation.LABELS[label_id] == record["label"]
    # Overlapping spans: one error line naming the line, nothing written.
    path.write_text(json.dumps({"text": "aspirin inhibits COX-1", "chemical": [0, 7], "gene": [5, 22]}) + "\n")
    proc = python([os.path.join(REPO, "run_re.py"), "--do_predict", f"--predict_file={path}",
                   f"--init_checkpoint={model}", f"--output_dir={tmp_path / 'pred2'}",
                   f"--dllog_path={tmp_path / 'pred2.json'}"], check=False)
    assert proc.returncode == 1
    assert f"error: {path}:1: the chemical span [0, 7] and the gene span [5, 22] overlap" in proc.stderr
    assert not (tmp_path / "pred2" / "predictions.jsonl").exists()
