r"""Pre-train BERT on PubMed (masked LM + next-sentence prediction) with LAMB, AMP, XLA and gradient accumulation.

    python run_pretraining.py --input_files_dir=.../training --eval_files_dir=.../test --output_dir=OUT \
        --bert_config_file=bert_config.json --init_checkpoint=bert_model.ckpt --do_train --do_eval \
        --max_seq_length=128 --max_predictions_per_seq=20 --num_accumulation_steps=32
"""
from biobert import cli  # quiet TensorFlow start-up

from absl import flags

from biobert import job, pretraining
from biobert import flags as biobert_flags
from biobert.defaults import TRAINING

biobert_flags.define_common()
flags.DEFINE_string("input_files_dir", None, "Directory (or comma-separated files/globs) of training TFRecords.")
flags.DEFINE_string("eval_files_dir", None, "Directory (or comma-separated files/globs) of evaluation TFRecords.")
flags.DEFINE_enum("optimizer_type", "lamb", ["lamb", "adam"], "Optimizer: LAMB (NVIDIA's form) or Adam with "
                  "decoupled weight decay.")
flags.DEFINE_string("vocab_file", None, "The WordPiece vocabulary the records were made with, copied into "
                    "--output_dir (with model_info.json) so that run_ner.py / run_re.py can start from that folder. "
                    "Default: vocab.txt beside --init_checkpoint.")
flags.DEFINE_bool("do_lower_case", True, "Whether the records were made lower-cased (recorded in the output's "
                  "model_info.json for fine-tuning).")
flags.DEFINE_bool("eval_before_training", True, "With --do_train --do_eval, a run that starts at step 0 also "
                  "evaluates before its first step (the 'before' figure: before_* in eval_results.txt, step 0 in "
                  "TensorBoard).")
flags.DEFINE_integer("max_seq_length", 512, "Sequence length of the records (must match the data).")
flags.DEFINE_integer("max_predictions_per_seq", 80, "Masked-LM predictions per sequence (must match the data).")
flags.DEFINE_bool("do_train", False, "Whether to run training.")
flags.DEFINE_bool("do_eval", False, "Whether to run eval on the eval files.")
flags.DEFINE_integer("train_batch_size", 32, "Training batch size per replica (per micro-batch).")
flags.DEFINE_integer("eval_batch_size", 8, "Batch size for eval.")
flags.DEFINE_float("learning_rate", 5e-5, "The peak learning rate per replica: the run uses it times the number "
                   "of replicas (GPUs over all processes), as the original times hvd.size().")
flags.DEFINE_float("poly_power", None, "Power of the polynomial decay after warm-up. Default as NVIDIA's: 0.5 for "
                   "LAMB (decay counted from step 0), 1.0 for Adam (linear from the peak at the end of warm-up).")
flags.DEFINE_integer("num_train_steps", 100000, "Number of optimizer steps (each of num_accumulation_steps "
                     "micro-batches).")
flags.DEFINE_integer("num_warmup_steps", 10000, "Number of warm-up steps.")
flags.DEFINE_integer("display_loss_steps", TRAINING["display_loss_steps"],
                     "How often to print the loss and throughput.")
flags.DEFINE_integer("max_eval_steps", 100, "Maximum number of eval batches.")
flags.DEFINE_integer("num_accumulation_steps", TRAINING["num_accumulation_steps"],
                     "Micro-batches accumulated before each optimizer step.")
flags.DEFINE_bool("allreduce_post_accumulation", TRAINING["allreduce_post_accumulation"],
                  "All-reduce gradients once after accumulation (True) or "
                  "after every micro-batch (False).")
flags.DEFINE_bool("report_loss", True, "Log the loss every display_loss_steps (always on in this port).")
flags.DEFINE_float("init_loss_scale", TRAINING["init_loss_scale"], "Initial dynamic loss scale (float16 on GPUs only).")
flags.adopt_module_key_flags(biobert_flags)   # --help lists the shared flags too
FLAGS = flags.FLAGS


@cli.main_guard
def main(_):
    pretraining.run(job.pretraining_settings(FLAGS))


if __name__ == "__main__":
    cli.run(main)
