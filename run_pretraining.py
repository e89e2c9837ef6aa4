r"""Pre-train BERT on PubMed (masked LM + next-sentence prediction) with LAMB, AMP, XLA and gradient accumulation.

    python run_pretraining.py --input_files_dir=.../training --eval_files_dir=.../test --output_dir=OUT \
        --bert_config_file=bert_config.json --init_checkpoint=bert_model.ckpt --do_train --do_eval \
        --max_seq_length=128 --max_predictions_per_seq=20 --num_accumulation_steps=32
"""
from biobert import cli  # noqa: F401  (quiet TensorFlow start-up)

from absl import flags

from biobert import flags as biobert_flags
from biobert import pretraining

biobert_flags.define_common(dllog_path="/results/bert_dllog.json")
flags.DEFINE_string("input_files_dir", None, "Directory (or comma-separated files/globs) of training TFRecords.")
flags.DEFINE_string("eval_files_dir", None, "Directory (or comma-separated files/globs) of evaluation TFRecords.")
flags.DEFINE_enum("optimizer_type", "lamb", ["lamb", "adam"], "Optimizer: LAMB (NVIDIA's form) or Adam with "
                  "decoupled weight decay.")
flags.DEFINE_integer("max_seq_length", 512, "Sequence length of the records (must match the data).")
flags.DEFINE_integer("max_predictions_per_seq", 80, "Masked-LM predictions per sequence (must match the data).")
flags.DEFINE_bool("do_train", False, "Whether to run training.")
flags.DEFINE_bool("do_eval", False, "Whether to run eval on the eval files.")
flags.DEFINE_integer("train_batch_size", 32, "Training batch size per replica (per micro-batch).")
flags.DEFINE_integer("eval_batch_size", 8, "Batch size for eval.")
flags.DEFINE_float("learning_rate", 5e-5, "The initial learning rate (multiplied by the number of workers).")
flags.DEFINE_integer("num_train_steps", 100000, "Number of optimizer steps (each of num_accumulation_steps "
                     "micro-batches).")
flags.DEFINE_integer("num_warmup_steps", 10000, "Number of warm-up steps.")
flags.DEFINE_integer("display_loss_steps", 1, "How often to print the loss and throughput.")
flags.DEFINE_integer("max_eval_steps", 100, "Maximum number of eval batches.")
flags.DEFINE_integer("num_accumulation_steps", 1, "Micro-batches accumulated before each optimizer step.")
flags.DEFINE_bool("allreduce_post_accumulation", False, "All-reduce gradients once after accumulation (True) or "
                  "after every micro-batch (False).")
flags.DEFINE_bool("report_loss", True, "Log the loss every display_loss_steps (always on in this port).")
flags.DEFINE_float("init_loss_scale", 2 ** 32, "Initial dynamic loss scale (float16 on GPUs only).")
flags.adopt_module_key_flags(biobert_flags)   # --help lists the shared flags too
FLAGS = flags.FLAGS


@cli.main_guard
def main(_):
    pretraining.run(FLAGS)


if __name__ == "__main__":
    cli.run(main)
