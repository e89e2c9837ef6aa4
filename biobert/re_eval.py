"""ChemProt evaluation: micro precision, recall and F1 over the five CPR classes.

``output_path``: one line per answer row, tab-separated class probabilities in
biobert.relation.LABELS order (run_re.py's test_results.tsv). ``answer_path``: the formatted
test.tsv (header, then index, sentence, label). The predicted label is the arg-max. ``false`` is
not a class to score: a true positive is a row predicted with its gold CPR label; predicted
positives are rows predicted non-false; gold positives are rows whose gold label is non-false.

The command is the entry point re_eval.py at the repository root; ``python biobert/re_eval.py ...``, the
original recipe's command, runs it.
"""
import os
import sys

if __name__ == "__main__":    # run as a file: this folder is no place to import the package from
    os.execv(sys.executable, [sys.executable, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(
        __file__))), "re_eval.py"), *sys.argv[1:]])

from biobert.errors import InputError, require_file  # noqa: E402
from biobert.relation import LABELS, NEGATIVE_LABEL, read_re_tsv  # noqa: E402

POSITIVE_LABELS = [label for label in LABELS if label != NEGATIVE_LABEL]


def _prf(tp, predicted, gold):
    precision = tp / predicted if predicted else 0.0
    recall = tp / gold if gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def evaluate(pred_labels, gold_labels):
    """Micro P/R/F1 over the CPR classes (``false`` excluded) plus a per-class breakdown.

    Returns {"precision", "recall", "f1" (fractions), "tp", "predicted", "gold" (counts),
    "accuracy" (over all rows, false included), "per_class": {label: {same keys}}}.
    """
    pred_labels, gold_labels = list(pred_labels), list(gold_labels)
    if len(pred_labels) != len(gold_labels):
        raise ValueError(f"{len(pred_labels)} predictions for {len(gold_labels)} gold labels")
    per_class = {}
    for label in POSITIVE_LABELS:
        tp = sum(p == g == label for p, g in zip(pred_labels, gold_labels))
        predicted = sum(p == label for p in pred_labels)
        gold = sum(g == label for g in gold_labels)
        precision, recall, f1 = _prf(tp, predicted, gold)
        per_class[label] = dict(precision=precision, recall=recall, f1=f1, tp=tp,
                                predicted=predicted, gold=gold)
    tp = sum(c["tp"] for c in per_class.values())
    predicted = sum(c["predicted"] for c in per_class.values())
    gold = sum(c["gold"] for c in per_class.values())
    precision, recall, f1 = _prf(tp, predicted, gold)
    correct = sum(p == g for p, g in zip(pred_labels, gold_labels))
    return dict(precision=precision, recall=recall, f1=f1, tp=tp, predicted=predicted, gold=gold,
                accuracy=correct / len(gold_labels) if gold_labels else 0.0, per_class=per_class)


def read_probabilities(path, num_labels=len(LABELS)):
    """Rows of class probabilities (list of lists of float); InputError names file and line."""
    path = require_file(path, "prediction file")
    rows = []
    with open(path, encoding="utf-8") as handle:
        lines = handle.read().split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    for number, line in enumerate(lines, start=1):
        fields = line.rstrip("\r").split("\t")
        if len(fields) != num_labels:
            raise InputError(f"expected {num_labels} tab-separated probabilities, found "
                             f"{len(fields)}", path=path, line=number)
        try:
            rows.append([float(field) for field in fields])
        except ValueError:
            raise InputError(f"non-numeric probability in {line!r}", path=path, line=number) \
                from None
    return rows


def predicted_labels(rows):
    """Arg-max label of each probability row (first maximum wins on ties)."""
    return [LABELS[max(range(len(row)), key=row.__getitem__)] for row in rows]


def evaluate_files(output_path, answer_path):
    """Read both files, check they line up, and return evaluate()'s dict."""
    answers = read_re_tsv(answer_path)
    rows = read_probabilities(output_path)
    if len(rows) != len(answers):
        if len(rows) < len(answers):
            where = f"answer row at {answer_path}:{answers[len(rows)].line} has no prediction"
        else:
            where = f"prediction at {output_path}:{len(answers) + 1} has no answer row"
        raise InputError(f"{len(rows)} prediction rows for {len(answers)} answer rows; {where}",
                         path=output_path)
    return evaluate(predicted_labels(rows), [example.label for example in answers])


def format_report(result):
    """The printed report: f1, precision, recall lines, then a per-class table."""
    lines = [f"f1 score : {100 * result['f1']:.2f}%",
             f"precision : {100 * result['precision']:.2f}%",
             f"recall : {100 * result['recall']:.2f}%",
             f"accuracy (all rows) : {100 * result['accuracy']:.2f}%",
             "",
             f"{'class':<8}{'precision':>10}{'recall':>10}{'f1':>10}{'tp':>8}{'pred':>8}{'gold':>8}"]
    rows = list(result["per_class"].items()) + [("micro", result)]
    for label, c in rows:
        lines.append(f"{label:<8}{100 * c['precision']:>9.2f}%{100 * c['recall']:>9.2f}%"
                     f"{100 * c['f1']:>9.2f}%{c['tp']:>8}{c['predicted']:>8}{c['gold']:>8}")
    return "\n".join(lines)
