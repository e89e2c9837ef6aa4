r"""Fine-tune BERT / BioBERT for named-entity recognition (BC5CDR chemical or disease, or any CoNLL-style corpus).

    python run_ner.py --task_name=bc5cdr --do_train --do_eval --do_predict --data_dir=DIR \
        --init_checkpoint=CKPT --vocab_file=vocab.txt --bert_config_file=bert_config.json --output_dir=OUT
"""
from biobert import cli  # first: quiet TensorFlow start-up

from absl import flags

from biobert import finetuning, job, tasks
from biobert import flags as biobert_flags
from biobert.errors import InputError

biobert_flags.define_finetuning(do_lower_case=False, train_batch_size=64, eval_batch_size=16, predict_batch_size=16,
                                learning_rate=5e-6, num_train_epochs=10, max_seq_length=128, task_name="bc5cdr")
flags.DEFINE_enum("ner_label_scheme", "first_subword", ["first_subword", "original"],
                  "'first_subword': only each word's first sub-word counts in the loss (more accurate: see "
                  "BENCHMARKS.md); 'original': every position is trained, with X (non-first sub-words), [CLS] and "
                  "[SEP] as classes, as in the original recipe. The label set and output files are the same either "
                  "way.")
flags.DEFINE_integer("max_words", 30, "Sentences longer than this many words are split at the last 'O' within "
                     "the first max_words words (as the original).")
flags.DEFINE_string("labels", None, "Declare the NER label set instead of taking the training data's tags: a "
                    "comma-separated list (--labels=B,I,O or --labels=O,B-Chemical,I-Chemical) or the path of a file "
                    "with one tag a line (or a label_map.json). Without it every tag must be O, B or I, or typed "
                    "B-<type> / I-<type> (one form throughout), and any other (a number, a lower-case 'b', a "
                    "type-less 'B-') stops with its file and line; with it, exactly the declared tags are allowed.")
flags.adopt_module_key_flags(biobert_flags)   # --help lists the shared flags too
FLAGS = flags.FLAGS
TASKS = ("bc5cdr", "ner")


@cli.main_guard
def main(_):
    if FLAGS.task_name.lower() not in TASKS:
        raise InputError(f"unknown --task_name {FLAGS.task_name!r} for run_ner.py (use one of {', '.join(TASKS)})")
    task = tasks.NerTask(FLAGS.ner_label_scheme, FLAGS.max_words, FLAGS.labels)
    finetuning.run(task, job.finetuning_settings(FLAGS))


if __name__ == "__main__":
    cli.run(main)
