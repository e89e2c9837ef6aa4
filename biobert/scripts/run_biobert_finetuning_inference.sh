#!/bin/bash
# Evaluate a fine-tuned BioBERT checkpoint on the dev and test sets of one task (single process), or, with
# PREDICT_FILE, tag your own text with it.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

usage() {
    cat <<'USAGE'
Usage: bash biobert/scripts/run_biobert_finetuning_inference.sh [task] [init_checkpoint]
         [bert_model] [cased] [precision] [use_xla] [batch_size]

Runs --do_eval and --do_predict of run_ner.py / run_re.py with a fine-tuned checkpoint and
reports F1, precision and recall (conlleval for NER, biobert/re_eval.py for ChemProt).

Positional arguments [defaults]:
  1 task              ner_bc5cdr-chem | ner_bc5cdr-disease | rel_chemprot [ner_bc5cdr-chem]
  2 init_checkpoint   fine-tuned checkpoint or Hugging Face folder
                      [<results>/biobert_tf_<uncased|cased>_<bert_model>/model.ckpt-4340]
  3 bert_model        base | large [base]
  4 cased             true | false [false]
  5 precision         fp16 -> --amp, anything else -> --noamp [fp16]
  6 use_xla           true | false [true with GPUs, false on CPU]
  7 batch_size        eval and predict batch size [16]
Sequence length: 128 for NER, 512 for ChemProt (SEQ_LENGTH overrides).

Environment: DATA_ROOT, BERT_DIR, VOCAB_FILE, BERT_CONFIG, BC5CDR_DATA, CHEMPROT_DATA,
CHEMPROT_CORPUS, RESULTS_DIR, OUTPUT_DIR, PYTHON, DRY_RUN=1 (print commands only).
Output: <results>/tf_bert_biobert_<task>_inference_<bert_model>_<precision>_<yymmddHHMMSS>.

Your own text: PREDICT_FILE=FILE (plain text, one document a line, or JSON lines with "text" and an
optional "id"; for rel_chemprot JSON lines with the "chemical" and "gene" character spans, or the
@CHEMICAL$/@GENE$ masked form) and init_checkpoint = a fine-tuned output folder: runs
--do_predict --predict_file instead and writes <output>/predictions.jsonl. The folder's own
vocabulary, config and casing are used (bert_model and cased are then not needed).
USAGE
}

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
batch_size="${7:-16}"
seq_length="${SEQ_LENGTH:-$DEF_SEQ}"

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
