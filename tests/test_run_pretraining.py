"""run_pretraining.py on TFRecords made from the real 1 MB PubMed sample: phase 1, phase 2, resume, errors."""
import json
import os
import re

import numpy as np
from helpers import run_python

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
    # The same model untrained: one step at the first warm-up rate, 0, leaves the initial weights.
    untrained = str(tmp_path / "untrained")
    python("run_pretraining.py", args_for(records, 1, untrained, num_train_steps=1) + ["--do_train", "--do_eval"])
    before = results(os.path.join(untrained, "eval_results.txt"))
    # 60 short steps raise the held-out masked-LM accuracy from chance (1 in 30522) to the frequent words' share,
    # and lower the masked-LM loss from about ln 30522 = 10.3.
    assert before["masked_lm_accuracy"] < 0.01 and before["masked_lm_loss"] > 9.5, before
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
