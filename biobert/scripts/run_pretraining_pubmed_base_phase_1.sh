#!/bin/bash
# BioBERT pre-training, phase 1: sequence length 128, 20 masked positions, LAMB, starting from
# the Google BERT-base checkpoint.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

usage() {
    cat <<'USAGE'
Usage: bash biobert/scripts/run_pretraining_pubmed_base_phase_1.sh [train_batch_size]
         [learning_rate] [cased] [precision] [use_xla] [num_gpu] [warmup_steps] [train_steps]
         [num_accumulation_steps] [save_checkpoint_steps] [eval_batch_size]

Positional arguments [defaults]:
  1 train_batch_size        per-process batch size [128]
  2 learning_rate           [9.625e-5]
  3 cased                   true | false [false]
  4 precision               fp16 -> --amp, anything else -> --noamp [fp16]
  5 use_xla                 true | false [true with GPUs, false on CPU]
  6 num_gpu                 processes; > 1 launches mpirun + --horovod [GPUs listed by nvidia-smi, else 1]
  7 warmup_steps            [1953]
  8 train_steps             [19531]
  9 num_accumulation_steps  [32]
 10 save_checkpoint_steps   [5000]
 11 eval_batch_size         [80]

Data: $DATA_ROOT/tfrecord/lower_case_<0|1>_seq_len_128_max_pred_20_masked_lm_prob_0.15_random_seed_12345_
dupe_factor_5_shard_<N>_test_split_10/pubmed_baseline/{training,test}, N the one such folder's
(the data script derives it from the corpus size) or NUM_SHARDS
(INPUT_FILES_DIR / EVAL_FILES_DIR override). Init: INIT_CHECKPOINT [$BERT_DIR/bert_model.ckpt]
(a Hugging Face folder works too; config and vocab come from beside it). Checkpoints: CHECKPOINTS_DIR [<results>/biobert_phase_1].
Log: <results>/tf_bert_bio_1n_phase1_cased_<cased>_<precision>_gbs<N>.<yymmddHHMMSS>.log.
Environment: DATA_ROOT, BERT_DIR, BERT_CONFIG, RESULTS_DIR [./results], MAX_EVAL_STEPS [100 eval batches],
PYTHON, DRY_RUN=1 (print commands only).
USAGE
}

bb_maybe_usage "$@"
bb_pretrain_main 1 "$@"
