"""run_pretraining.py on TFRecords made from the real 1 MB PubMed sample: phase 1, phase 2, resume, errors."""
import json
import os
import re

import numpy as np
import pytest
import tensorflow as tf
from helpers import minilm_folder, run_python
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from biobert import checkpoints, modeling
from biobert.config import BertConfig

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def python(script, args, check=True):
    return run_python([os.path.join(REPO, script)] + args, check=check)


def args_for(records, phase, out, **extra):
    r = records[phase]
    values = {"input_files_dir": r["train"], "eval_files_dir": r["test"], "output_dir": out,
              "bert_config_file": records["config"], "dllog_path": os.path.join(out, "dllog.json"),
              "max_seq_length": r["seq"], "max_predictions_per_seq": r["pred"], "train_batch_size": 16,
              "eval_batch_size": 16, "learning_rate": 5e-2, "num_warmup_steps": 5, "max_eval_steps": 10,
              "save_checkpoints_steps": 20, "display_loss_steps": 1, "optimizer_type": "lamb"}
    values.update(extra)
    return [f"--{k}={v}" for k, v in values.items()] + ["--noamp", "--nouse_xla"]


def losses(path):
    rows = [json.loads(line[5:]) for line in open(path, encoding="utf-8") if line.startswith("DLLL ")]
    return [(r["step"], r["data"]["loss"]) for r in rows if r["type"] == "LOG" and "loss" in r["data"]]


def rates(path):
    rows = [json.loads(line[5:]) for line in open(path, encoding="utf-8") if line.startswith("DLLL ")]
    return [r["data"]["learning_rate"] for r in rows if r["type"] == "LOG" and "learning_rate" in r["data"]]


def results(path):
    return {k: float(v) for k, v in (line.strip().split(" = ") for line in open(path, encoding="utf-8"))}


def test_phase1_then_phase2_from_its_checkpoint(records, tmp_path):
    p1 = str(tmp_path / "phase1")
    python("run_pretraining.py", args_for(records, 1, p1, num_train_steps=60, num_accumulation_steps=2)
           + ["--do_train", "--do_eval"])
    seen = [loss for _, loss in losses(os.path.join(p1, "dllog.json"))]
    assert len(seen) == 60 and np.mean(seen[-10:]) < np.mean(seen[:10]) - 1.0   # MLM+NSP loss falls clearly
    # LAMB's rate at each step (optimizer steps, not micro-batches): linear warm-up over 5 steps from 0, then
    # NVIDIA's polynomial decay with power 0.5 counted from step 0 over all 60 steps.
    expected_rates = [5e-2 * (k / 5 if k < 5 else (1 - k / 60) ** 0.5) for k in range(60)]
    np.testing.assert_allclose(rates(os.path.join(p1, "dllog.json")), expected_rates, rtol=1e-5)
    first = results(os.path.join(p1, "eval_results.txt"))
    assert first["global_step"] == 60
    # The same held-out records evaluated before the first step (--eval_before_training, on by default).
    before = {k[len("before_"):]: v for k, v in first.items() if k.startswith("before_")}
    # 60 short steps raise the held-out masked-LM accuracy from chance (1 in 30522) to the frequent words' share,
    # and lower the masked-LM loss from about ln 30522 = 10.3.
    assert before["masked_lm_accuracy"] < 0.01 and before["masked_lm_loss"] > 9.5, before
    # Both figures in TensorBoard, at step 0 and at the last step.
    events = EventAccumulator(os.path.join(p1, "tensorboard"))
    events.Reload()
    tensorboard = {e.step: float(tf.make_ndarray(e.tensor_proto)) for e in events.Tensors("eval/masked_lm_accuracy")}
    assert sorted(tensorboard) == [0, 60]
    assert tensorboard[0] == pytest.approx(before["masked_lm_accuracy"], rel=1e-4)
    assert tensorboard[60] == pytest.approx(first["masked_lm_accuracy"], rel=1e-4)
    assert first["masked_lm_accuracy"] > before["masked_lm_accuracy"] + 0.03, (before, first)
    assert first["masked_lm_loss"] < before["masked_lm_loss"] - 2.0, (before, first)
    # Phase 2 at sequence length 128 starts from phase 1's weights (heads included) and its own step 0.
    p2 = str(tmp_path / "phase2")
    before = python("run_pretraining.py", args_for(records, 2, str(tmp_path / "fresh"), num_train_steps=1)
                    + ["--do_eval"], check=False)
    assert before.returncode == 1 and "nothing to evaluate" in before.stderr
    proc = python("run_pretraining.py", args_for(records, 2, p2, num_train_steps=10, init_checkpoint=p1)
                  + ["--do_train", "--do_eval"])
    assert re.search(r"loaded \d+ variables from .*phase1/model.ckpt-60", proc.stdout)
    second = results(os.path.join(p2, "eval_results.txt"))
    assert second["global_step"] == 10
    assert second["masked_lm_loss"] < 9.0          # log(30522) = 10.3 for an untrained model


def test_interrupted_pretraining_resumes_at_saved_step(records, tmp_path):
    out = str(tmp_path / "run")
    python("run_pretraining.py", args_for(records, 1, out, num_train_steps=8) + ["--do_train"])
    # A longer run in the same folder continues from step 8 where its input stopped (the saved iterator
    # position: nothing consumed is read again).
    proc = python("run_pretraining.py", args_for(records, 1, out, num_train_steps=12) + ["--do_train"])
    assert "resuming from" in proc.stdout and "at step 8" in proc.stdout
    assert "input continues from its position at step 8" in proc.stdout
    assert [s for s, _ in losses(os.path.join(out, "dllog.json"))] == list(range(1, 13))


def test_records_of_another_length_are_refused(records, tmp_path):
    proc = python("run_pretraining.py", args_for(records, 1, str(tmp_path / "x"), num_train_steps=2,
                                                 max_seq_length=128) + ["--do_train"], check=False)
    assert proc.returncode == 1
    assert "input_ids of length 64, but --max_seq_length=128" in proc.stderr


def test_adam_pretraining_rate_decays_linearly_from_the_end_of_warm_up(records, tmp_path):
    """--optimizer_type=adam: warm-up over 3 steps from 0, then from the peak linearly to 0 at step 9 (NVIDIA's
    adjusted_init_lr: no step down when warm-up ends), per optimizer step with 2 micro-batches each."""
    out = str(tmp_path / "adam")
    python("run_pretraining.py", args_for(records, 1, out, num_train_steps=9, num_warmup_steps=3,
                                          optimizer_type="adam", learning_rate=1e-3, num_accumulation_steps=2)
           + ["--do_train"])
    expected = [1e-3 * (k / 3 if k < 3 else (9 - k) / 6) for k in range(9)]
    np.testing.assert_allclose(rates(os.path.join(out, "dllog.json")), expected, rtol=1e-5)


def test_pretraining_output_folder_is_an_init_checkpoint_for_run_ner(records, ner_slice, uncased_vocab, tmp_path):
    """The hand-over with no conversion: run_pretraining.py's output folder (checkpoint, bert_config.json, and the
    vocab.txt and model_info.json it now writes) given as run_ner.py --init_checkpoint; every encoder weight
    arrives as pre-trained (a fine-tuning step at rate 0 leaves them in run_ner's own checkpoint)."""
    pre = str(tmp_path / "pre")
    python("run_pretraining.py", args_for(records, 1, pre, num_train_steps=3, vocab_file=uncased_vocab)
           + ["--do_train"])
    assert open(os.path.join(pre, "vocab.txt"), "rb").read() == open(uncased_vocab, "rb").read()
    assert checkpoints.read_model_info(pre) == {"do_lower_case": True, "max_seq_length": 64}
    ner = str(tmp_path / "ner")
    proc = python("run_ner.py", [f"--data_dir={ner_slice['data']}", f"--output_dir={ner}", f"--init_checkpoint={pre}",
                                 "--do_train", "--do_lower_case", "--max_seq_length=64", "--num_train_steps=1",
                                 "--learning_rate=0", "--train_batch_size=8", "--noamp", "--nouse_xla",
                                 "--save_checkpoints_steps=1"])
    assert re.search(r"loaded \d+ variables from .*pre/model.ckpt-3", proc.stdout), proc.stdout
    trained, fine = checkpoints.TensorSource(pre), checkpoints.TensorSource(ner)
    model = modeling.build(modeling.BertPretrainer(BertConfig.from_json_file(os.path.join(pre, "bert_config.json"))))
    encoder = [name for name in modeling.variable_map(model) if modeling.is_bert_variable(name)]
    assert len(encoder) == 5 + 16 * 2 + 2         # embeddings, 2 layers, pooler of the tiny config
    for name in encoder:
        np.testing.assert_array_equal(fine.get(name), trained.get(name), err_msg=name)


def test_continuing_from_minilm_starts_a_fresh_mlm_head_tied_to_its_embeddings(records, tmp_path):
    """MiniLM ships no cls/ heads: run_pretraining.py from its folder says in one line which start fresh, takes
    its vocabulary along; the fresh MLM output layer is the word-embedding matrix itself (no separate weight)."""
    out = str(tmp_path / "minilm")
    proc = python("run_pretraining.py", args_for(records, 1, out, num_train_steps=1, train_batch_size=2,
                                                 init_checkpoint=minilm_folder(), bert_config_file="")
                  + ["--do_train"])
    fresh = [line for line in proc.stdout.splitlines() if "newly initialised" in line]
    assert len(fresh) == 1 and "cls/predictions/output_bias" in fresh[0], proc.stdout
    assert "cls/seq_relationship/output_weights" in fresh[0] and "bert/" not in fresh[0].split("initialised:")[1]
    assert os.path.isfile(os.path.join(out, "vocab.txt"))
    # In process: after loading MiniLM, changing one word's embedding row changes that word's MLM logit (and only
    # its own, for an input that does not contain the word): the output projection reads the embedding matrix.
    config = BertConfig.from_json_file(os.path.join(minilm_folder(), "config.json"))
    model = modeling.build(modeling.BertPretrainer(config))
    variables = modeling.variable_map(model)
    checkpoints.load_weights(variables, minilm_folder(), log=lambda *_: None)
    assert not any(name.startswith("cls/predictions/output_weights") for name in variables)
    batch = {"input_ids": np.array([[101, 2023, 2003, 103, 102]]), "input_mask": np.ones((1, 5), np.int64),
             "segment_ids": np.zeros((1, 5), np.int64), "masked_lm_positions": np.array([[3]])}
    before = model(batch)[0].numpy()[0, 0]
    word = 7592
    table = model.bert.embeddings.word_embeddings
    # a random change (a constant one would be invisible: the fresh head's LayerNorm output sums to 0)
    delta = np.random.default_rng(0).standard_normal((1, config.hidden_size)).astype(np.float32)
    table.assign(tf.tensor_scatter_nd_add(table, [[word]], delta))
    after = model(batch)[0].numpy()[0, 0]
    changed = np.flatnonzero(np.abs(after - before) > 1e-6)
    assert changed.tolist() == [word]
