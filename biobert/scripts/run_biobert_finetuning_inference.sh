#!/bin/bash
# Evaluate a fine-tuned BioBERT checkpoint on the dev and test sets of one task (single process), or, with
# PREDICT_FILE, tag your own text with it.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

usage() { bb_py usage inference; }

bb_maybe_usage "$@"
bb_max_args 7 "$@"

task="${1:-ner_bc5cdr-chem}"
bb_task_settings "$task"
results="$(bb_results_dir)"
init_checkpoint="${2:-}"
bert_model="${3:-base}"
cased="${4:-false}"
precision="${5:-fp16}"
use_xla="${6:-$(bb_default_use_xla)}"
batch_size="${7:-$INFER_BS}"
seq_length="${SEQ_LENGTH:-$INFER_SEQ}"

bb_check_bool use_xla "$use_xla"
bb_check_int batch_size "$batch_size"
bb_check_int SEQ_LENGTH "$seq_length"
bb_set_casing "$cased"
bb_set_bert_dir "$bert_model"
init_checkpoint="${init_checkpoint:-$results/biobert_tf_${CASING_DIR_PREFIX}_${bert_model}/model.ckpt-4340}"
bb_set_model_file_flags "$init_checkpoint"

out="${OUTPUT_DIR:-$results/tf_bert_biobert_${TASK_TAG}_inference_${bert_model}_${precision}_$(bb_datestamp)}"

if [ -n "${PREDICT_FILE:-}" ]; then
    [ -f "$PREDICT_FILE" ] || bb_die "PREDICT_FILE not found: $PREDICT_FILE"
    folder="$init_checkpoint"
    [ -d "$folder" ] || folder="$(dirname "$init_checkpoint")"
    own_flags=()
    if [ ! -f "$folder/model_info.json" ]; then
        # not a folder written by this project's fine-tuning: the model files and casing must be given
        own_flags=("${MODEL_FILE_FLAGS[@]}" "$CASE_FLAG")
    fi
    bb_mkdir "$out"
    bb_info "Tagging $PREDICT_FILE with $init_checkpoint; output: $out/predictions.jsonl"
    bb_run "$PYTHON" "$ENTRY" \
        --do_predict=true \
        "--task_name=$TASK_NAME" \
        "--predict_file=$PREDICT_FILE" \
        "--init_checkpoint=$init_checkpoint" \
        "${own_flags[@]}" \
        "--output_dir=$out" \
        "--dllog_path=$out/bert_dllog.json" \
        "--predict_batch_size=$batch_size" \
        "--max_seq_length=$seq_length" \
        "$(bb_precision_flag "$precision")" "$(bb_xla_flag "$use_xla")"
    exit 0
fi
bb_mkdir "$out"
bb_info "Inference for $task with $init_checkpoint; output: $out"

if [ "$TASK_NAME" = chemprot ]; then
    bb_prepare_chemprot
fi
bb_run "$PYTHON" "$ENTRY" \
    --do_prepare=true --do_eval=true --do_predict=true \
    "--task_name=$TASK_NAME" \
    "${MODEL_FILE_FLAGS[@]}" \
    "--init_checkpoint=$init_checkpoint" \
    "--data_dir=$DATASET_DIR" \
    "--output_dir=$out" \
    "--dllog_path=$out/bert_dllog.json" \
    "--eval_batch_size=$batch_size" \
    "--predict_batch_size=$batch_size" \
    "--max_seq_length=$seq_length" \
    "$(bb_precision_flag "$precision")" "$(bb_xla_flag "$use_xla")" "$CASE_FLAG"

bb_evaluate "$out"
