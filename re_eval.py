r"""Score run_re.py's ChemProt predictions: micro precision, recall and F1 over the five CPR classes.

    python re_eval.py --task=chemprot --output_path=OUT/test_results.tsv --answer_path=DATA/test.tsv

(``python biobert/re_eval.py ...``, the original recipe's command, runs this.) ``output_path``: one line per
answer row, tab-separated class probabilities in the order CPR:3, CPR:4, CPR:5, CPR:6, CPR:9, false (run_re.py's
test_results.tsv). ``answer_path``: the formatted test.tsv (header, then index, sentence, label). The predicted
label is the arg-max. ``false`` is not a class to score: a true positive is a row predicted with its gold CPR
label; predicted positives are rows predicted non-false; gold positives are rows whose gold label is non-false.
Prints the F1, precision and recall lines, then a per-class table.
"""
from absl import flags

from biobert import flags as biobert_flags
from biobert import re_eval
from biobert.errors import InputError

flags.DEFINE_string("task", "chemprot", "Evaluation task; only 'chemprot' is supported.")
flags.DEFINE_string("output_path", None, "Predicted probabilities (run_re.py's test_results.tsv).")
flags.DEFINE_string("answer_path", None, "Gold answers: the formatted test.tsv with header.")
FLAGS = flags.FLAGS


@biobert_flags.main_guard
def main(_):
    if FLAGS.task.lower() != "chemprot":
        raise InputError(f"unknown task {FLAGS.task!r} (only 'chemprot' is supported)")
    if not FLAGS.output_path or not FLAGS.answer_path:
        raise InputError("--output_path and --answer_path are required")
    print(re_eval.format_report(re_eval.evaluate_files(FLAGS.output_path, FLAGS.answer_path)))
    return 0


if __name__ == "__main__":
    biobert_flags.run(main)
