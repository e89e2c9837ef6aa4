#!/bin/bash
# BioBERT pre-training, phase 2: sequence length 512, 80 masked positions, LAMB, starting from
# the phase-1 checkpoint.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

usage() {
    cat <<'USAGE'
Usage: bash biobert/scripts/run_pretraining_pubmed_base_phase_2.sh [init_checkpoint]
         [train_batch_size] [learning_rate] [cased] [precision] [use_xla] [num_gpu] [warmup_steps]
         [train_steps] [num_accumulation_steps] [save_checkpoint_steps] [eval_batch_size]

Positional arguments [defaults]:
  1 init_checkpoint         phase-1 checkpoint, or a folder (its latest checkpoint is taken)
                            [latest checkpoint in <results>/biobert_phase_1]
  2 train_batch_size        per-process batch size [16]
  3 learning_rate           [2.9e-4]
  4 cased                   true | false [false]
  5 precision               fp16 -> --amp, anything else -> --noamp [fp16]
  6 use_xla                 true | false [true with GPUs, false on CPU]
  7 num_gpu                 processes; > 1 launches mpirun + --horovod [GPUs listed by nvidia-smi, else 1]
  8 warmup_steps            [434]
  9 train_steps             [4340]
 10 num_accumulation_steps  [128]
 11 save_checkpoint_steps   [5000]
 12 eval_batch_size         [26]

Data: $DATA_ROOT/tfrecord/lower_case_<0|1>_seq_len_512_max_pred_80_masked_lm_prob_0.15_random_seed_12345_
dupe_factor_5_shard_<N>_test_split_10/pubmed_baseline/{training,test}, N the one such folder's
(the data script derives it from the corpus size) or NUM_SHARDS
(INPUT_FILES_DIR / EVAL_FILES_DIR override). Config: the bert_config.json beside the checkpoint (BERT_CONFIG overrides).
Checkpoints: CHECKPOINTS_DIR [<results>/biobert_phase_2].
Log: <results>/tf_bert_bio_1n_phase2_cased_<cased>_<precision>_gbs<N>.<yymmddHHMMSS>.log.
Environment: DATA_ROOT, BERT_DIR, BERT_CONFIG, RESULTS_DIR [./results], MAX_EVAL_STEPS [100 eval batches],
PYTHON, DRY_RUN=1 (print commands only).
USAGE
}

bb_maybe_usage "$@"
bb_pretrain_main 2 "$@"
