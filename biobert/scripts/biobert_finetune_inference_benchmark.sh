#!/bin/bash
# Inference benchmark: eval/predict runs over sequence lengths, batch sizes and precisions on
# one process; collects throughput and latency of every run into one summary file.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

usage() {
    cat <<'USAGE'
Usage: bash biobert/scripts/biobert_finetune_inference_benchmark.sh [task] [bert_model] [cased]

Runs --do_eval/--do_predict for every
  seq_length in {128, 512} x batch_size in {8, 32, 64} x {--amp with XLA, --noamp without XLA}
and prints, per run, `Throughput Average (sentences/sec) = X` and the latency
p50/p90/p95/p99/p100 lines read from the run's log and dllogger file, then the summary table.

Positional arguments [defaults]:
  1 task        ner_bc5cdr-chem | ner_bc5cdr-disease | rel_chemprot [ner_bc5cdr-chem]
  2 bert_model  base | large [base]
  3 cased       true | false [false]

Environment: BENCH_SEQ_LENGTHS ["128 512"], BENCH_BATCH_SIZES ["8 32 64"],
BENCH_PRECISIONS ["fp16 fp32"], INIT_CHECKPOINT [$BERT_DIR/bert_model.ckpt], DATA_ROOT,
BERT_DIR, VOCAB_FILE, BERT_CONFIG, BC5CDR_DATA, CHEMPROT_DATA, RESULTS_DIR, PYTHON, DRY_RUN=1.
Output: <results>/tf_bert_biobert_<task>_inference_benchmark_<bert_model>_<cased|uncased>_<yymmddHHMMSS>/
with one folder per run and the summary <task>_inference_benchmark_bert_<bert_model>.log.
USAGE
}

bb_maybe_usage "$@"
bb_max_args 3 "$@"

task="${1:-ner_bc5cdr-chem}"
bert_model="${2:-base}"
cased="${3:-false}"

bb_task_settings "$task"
bb_set_casing "$cased"
bb_set_bert_dir "$bert_model"
init_checkpoint="${INIT_CHECKPOINT:-$BERT_DIR/bert_model.ckpt}"
bb_set_model_file_flags "$init_checkpoint"
results="$(bb_results_dir)"

out="$results/tf_bert_biobert_${task}_inference_benchmark_${bert_model}_${CASING_DIR_PREFIX}_$(bb_datestamp)"
summary="$out/${task}_inference_benchmark_bert_${bert_model}.log"
bb_mkdir "$out"
if [ "$TASK_NAME" = chemprot ]; then
    bb_prepare_chemprot
fi
if ! bb_is_dry_run; then
    {
        echo "Inference performance benchmarking for BERT $bert_model from $init_checkpoint ($task)"
        printf 'precision\tseq_length\tbatch_size\tthroughput(sent/s)\tp50(ms)\tp90(ms)\tp95(ms)\tp99(ms)\tp100(ms)\n'
    } > "$summary"
fi

failed=()
for seq_length in ${BENCH_SEQ_LENGTHS:-128 512}; do
    for batch_size in ${BENCH_BATCH_SIZES:-8 32 64}; do
        for precision in ${BENCH_PRECISIONS:-fp16 fp32}; do
            bb_check_int seq_length "$seq_length"
            bb_check_int batch_size "$batch_size"
            if [ "$precision" = fp16 ]; then use_xla=true; else use_xla=false; fi
            res_dir="$out/bert_${bert_model}_sl_${seq_length}_prec_${precision}_bs_${batch_size}"
            log="$res_dir/${task}_inference_benchmark.log"
            bb_mkdir "$res_dir"
            bb_info "== $task: precision $precision, seq_length $seq_length, batch $batch_size"
            if ! bb_run_logged "$log" "$PYTHON" "$ENTRY" \
                --do_prepare=true --do_train=false --do_eval=true --do_predict=true \
                "--task_name=$TASK_NAME" \
                "${MODEL_FILE_FLAGS[@]}" \
                "--init_checkpoint=$init_checkpoint" \
                "--data_dir=$DATASET_DIR" \
                "--output_dir=$res_dir" \
                "--dllog_path=$res_dir/bert_dllog.json" \
                "--eval_batch_size=$batch_size" \
                "--predict_batch_size=$batch_size" \
                "--max_seq_length=$seq_length" \
                "$(bb_precision_flag "$precision")" "$(bb_xla_flag "$use_xla")" "$CASE_FLAG"; then
                failed+=("$res_dir")
                bb_info "run failed, see $log"
            fi
            bb_is_dry_run && continue
            perf="$(bb_collect_perf infer "$log" "$res_dir/bert_dllog.json")"
            echo "$perf"
            bb_summary_row "$summary" "$perf" "$precision" "$seq_length" "$batch_size"
        done
    done
done

bb_finish_benchmark "$summary" ${failed[@]+"${failed[@]}"}
