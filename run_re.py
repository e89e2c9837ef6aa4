r"""Fine-tune BERT / BioBERT for relation extraction (ChemProt: CPR:3, 4, 5, 6, 9 or false).

    python run_re.py --task_name=chemprot --do_train --do_eval --do_predict --data_dir=DIR \
        --init_checkpoint=CKPT --vocab_file=vocab.txt --bert_config_file=bert_config.json --output_dir=OUT
"""
from biobert import cli  # first: quiet TensorFlow start-up

from absl import flags

from biobert import finetuning, job, tasks
from biobert import flags as biobert_flags
from biobert.errors import InputError

biobert_flags.define_finetuning(do_lower_case=True, train_batch_size=16, eval_batch_size=8, predict_batch_size=8,
                                learning_rate=5e-6, num_train_epochs=3, max_seq_length=128, task_name="chemprot",
                                group_by_length=False)
flags.adopt_module_key_flags(biobert_flags)   # --help lists the shared flags too
FLAGS = flags.FLAGS
TASKS = ("chemprot",)


@cli.main_guard
def main(_):
    if FLAGS.task_name.lower() not in TASKS:
        raise InputError(f"unknown --task_name {FLAGS.task_name!r} for run_re.py (use chemprot)")
    finetuning.run(tasks.RelationTask(), job.finetuning_settings(FLAGS))


if __name__ == "__main__":
    cli.run(main)
