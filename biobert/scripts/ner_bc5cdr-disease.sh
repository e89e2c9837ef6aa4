#!/bin/bash
# Fine-tune BioBERT for BC5CDR-disease named-entity recognition, then print the conlleval summary.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

usage() {
    cat <<'USAGE'
Usage: bash biobert/scripts/ner_bc5cdr-disease.sh [init_checkpoint] [train_batch_size] [learning_rate]
         [cased] [precision] [use_xla] [num_gpu] [seq_length] [bert_model] [eval_batch_size] [epochs]

Fine-tunes run_ner.py on BC5CDR-disease (train+devel for training, devel for eval, test for
prediction) and prints the conlleval summary of the test set.

Positional arguments [defaults]:
  1 init_checkpoint   TF1/TF2 checkpoint or Hugging Face folder
                      [<results>/biobert_tf_<uncased|cased>_<bert_model>/model.ckpt]
  2 train_batch_size  per-process batch size [8]
  3 learning_rate     [3.125e-6]
  4 cased             true | false [false]   (false: uncased vocabulary, --do_lower_case=true)
  5 precision         fp16 -> --amp, anything else -> --noamp [fp16]
  6 use_xla           true | false [true with GPUs, false on CPU]
  7 num_gpu           processes; > 1 launches mpirun + --horovod [GPUs listed by nvidia-smi, else 1]
  8 seq_length        [128]
  9 bert_model        base | large [base]
 10 eval_batch_size   eval and predict batch size [8]
 11 epochs            [100.0]

Environment: DATA_ROOT, BERT_DIR, VOCAB_FILE, BERT_CONFIG, BC5CDR_DATA
[$DATA_ROOT/biobert/BC5CDR/disease], RESULTS_DIR, OUTPUT_DIR, PYTHON, DRY_RUN=1 (print commands only).
Output: <results>/tf_bert_biobert_ner_bc5cdr_disease_<bert_model>_<precision>_gbs<N>_<yymmddHHMMSS>.
USAGE
}

bb_maybe_usage "$@"
bb_finetune_main ner_bc5cdr-disease "$@"
