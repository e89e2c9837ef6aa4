"""biobert/re_eval.py: micro P/R/F1 over CPR classes (false excluded), file checks; the re_eval.py command."""
import os
import subprocess
import sys

import pytest
from helpers import REPO

from biobert import re_eval
from biobert.errors import InputError

HEADER = "index\tsentence\tlabel\n"
ONE_HOT = {label: i for i, label in enumerate(["CPR:3", "CPR:4", "CPR:5", "CPR:6", "CPR:9",
                                               "false"])}


def _files(tmp_path, gold, pred, prob_lines=None):
    answer = tmp_path / "test.tsv"
    answer.write_text(HEADER + "".join(f"{i}.T1.T2\ts @CHEMICAL$ @GENE$\t{g}\n"
                                       for i, g in enumerate(gold)))
    if prob_lines is None:
        prob_lines = []
        for p in pred:  # the predicted class gets 0.6, the rest share 0.4
            row = [0.08] * 6
            row[ONE_HOT[p]] = 0.6
            prob_lines.append("\t".join(map(str, row)))
    output = tmp_path / "test_results.tsv"
    output.write_text("".join(line + "\n" for line in prob_lines))
    return output, answer


GOLD = ["CPR:3", "CPR:3", "CPR:4", "false", "false", "CPR:9", "CPR:6"]
PRED = ["CPR:3", "CPR:4", "false", "CPR:3", "false", "false", "CPR:6"]
# by hand: TP = rows 0 and 6 -> 2; predicted non-false = rows 0,1,3,6 -> 4;
# gold non-false = rows 0,1,2,5,6 -> 5. P = 2/4, R = 2/5, F1 = 2PR/(P+R) = 0.4/0.9 = 4/9


def test_evaluate_by_hand():
    result = re_eval.evaluate(PRED, GOLD)
    assert (result["tp"], result["predicted"], result["gold"]) == (2, 4, 5)
    assert result["precision"] == pytest.approx(0.5)
    assert result["recall"] == pytest.approx(0.4)
    assert result["f1"] == pytest.approx(4 / 9)
    assert result["accuracy"] == pytest.approx(3 / 7)  # rows 0, 4, 6
    cpr3 = result["per_class"]["CPR:3"]
    assert (cpr3["tp"], cpr3["predicted"], cpr3["gold"]) == (1, 2, 2)
    assert result["per_class"]["CPR:5"]["f1"] == 0.0
    assert "false" not in result["per_class"]


def test_all_false_scores_zero_and_perfect_scores_one():
    assert re_eval.evaluate(["false"] * 3, ["CPR:3", "false", "CPR:9"])["f1"] == 0.0
    assert re_eval.evaluate(["CPR:3", "false"], ["CPR:3", "false"])["f1"] == 1.0


def test_evaluate_files_uses_argmax(tmp_path):
    output, answer = _files(tmp_path, GOLD, PRED)
    assert re_eval.evaluate_files(output, answer)["f1"] == pytest.approx(4 / 9)


def run(*args):
    return subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("command", [["re_eval.py"], ["biobert/re_eval.py"], ["-m", "biobert.re_eval"]],
                         ids=["entry point", "the original's path", "module"])
def test_cli_prints_report(tmp_path, command):
    """The entry point, and the original recipe's `python biobert/re_eval.py ...` from any folder."""
    output, answer = _files(tmp_path, GOLD, PRED)
    if command[0] != "-m":
        command = [os.path.join(REPO, command[0])]
    proc = subprocess.run([sys.executable, *command, "--task=chemprot", f"--output_path={output}",
                           f"--answer_path={answer}"], capture_output=True, text=True, timeout=60,
                          cwd=REPO if command[0] == "-m" else tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[:3] == ["f1 score : 44.44%", "precision : 50.00%", "recall : 40.00%"]
    assert any(line.split()[:1] == ["CPR:3"] and "50.00%" in line for line in lines)
    assert not any(line.startswith("false") for line in lines)


def test_mismatched_row_counts(tmp_path):
    output, answer = _files(tmp_path, GOLD, PRED[:-1])
    with pytest.raises(InputError, match=r"6 prediction rows for 7 answer rows; answer row at "
                                         + f"{answer}:8 has no prediction"):
        re_eval.evaluate_files(output, answer)
    output, answer = _files(tmp_path, GOLD[:-1], PRED)
    with pytest.raises(InputError, match=f"prediction at {output}:7 has no answer row"):
        re_eval.evaluate_files(output, answer)
    proc = run(os.path.join(REPO, "re_eval.py"), f"--output_path={output}", f"--answer_path={answer}")
    assert proc.returncode == 1 and proc.stderr.startswith("error: ")
    assert "7 prediction rows for 6 answer rows" in proc.stderr


@pytest.mark.parametrize("bad, message", [
    ("0.5\t0.5\t0\t0\t0", "expected 6 tab-separated probabilities, found 5"),
    ("0.5\tx\t0\t0\t0\t0.5", "non-numeric probability"),
])
def test_bad_probability_line_names_file_and_line(tmp_path, bad, message):
    lines = ["1\t0\t0\t0\t0\t0"] * 3
    lines[1] = bad
    output, answer = _files(tmp_path, GOLD[:3], None, lines)
    with pytest.raises(InputError, match=message) as err:
        re_eval.evaluate_files(output, answer)
    assert (err.value.path, err.value.line) == (str(output), 2)


def test_unknown_task_exits_1(tmp_path):
    output, answer = _files(tmp_path, GOLD, PRED)
    proc = run(os.path.join(REPO, "biobert", "re_eval.py"), "--task=ddi", f"--output_path={output}",
               f"--answer_path={answer}")
    assert proc.returncode == 1 and proc.stderr == "error: unknown task 'ddi' (only 'chemprot' is supported)\n"
    proc = run(os.path.join(REPO, "re_eval.py"), f"--output_path={output}")
    assert proc.returncode == 1 and proc.stderr == "error: --output_path and --answer_path are required\n"
