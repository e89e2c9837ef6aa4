#!/bin/bash
# Training-throughput benchmark: short fine-tuning runs over sequence lengths, batch sizes and
# precisions; collects throughput and latency of every run into one summary file.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

usage() {
    cat <<'USAGE'
Usage: bash biobert/scripts/biobert_finetune_train_benchmark.sh [task] [num_gpu] [bert_model] [cased]

Fine-tunes for BENCH_EPOCHS epochs from the Google BERT checkpoint for every
  seq_length in {128, 512} x train_batch_size in {8, 32, 64} x precision in {fp16, fp32}
(fp16 runs with --amp --use_xla, fp32 with --noamp --nouse_xla) and prints, per run,
  Throughput Average (sentences/sec) = X   and the latency p50/p90/p95/p99/p100 lines
read from the run's log and dllogger file, then the summary table.

Positional arguments [defaults]:
  1 task        ner_bc5cdr-chem | ner_bc5cdr-disease | rel_chemprot [ner_bc5cdr-chem]
  2 num_gpu     processes; > 1 launches mpirun + --horovod [GPUs listed by nvidia-smi, else 1]
  3 bert_model  base | large [base]
  4 cased       true | false [false]

Environment: BENCH_EPOCHS [2.0], BENCH_SEQ_LENGTHS ["128 512"], BENCH_BATCH_SIZES ["8 32 64"],
BENCH_PRECISIONS ["fp16 fp32"], INIT_CHECKPOINT [$BERT_DIR/bert_model.ckpt], DATA_ROOT,
BERT_DIR, VOCAB_FILE, BERT_CONFIG, BC5CDR_DATA, CHEMPROT_DATA, RESULTS_DIR, PYTHON, DRY_RUN=1.
Output: <results>/tf_bert_biobert_<task>_training_benchmark_<bert_model>_<cased|uncased>_num_gpu_<N>_<yymmddHHMMSS>/
with one folder per run and the summary <task>_training_benchmark_bert_<bert_model>_gpu_<N>.log.
USAGE
}

bb_maybe_usage "$@"
bb_max_args 4 "$@"

task="${1:-ner_bc5cdr-chem}"
num_gpu="${2:-$(bb_default_num_gpu)}"
bert_model="${3:-base}"
cased="${4:-false}"
epochs="${BENCH_EPOCHS:-2.0}"

bb_task_settings "$task"
bb_check_number BENCH_EPOCHS "$epochs"
bb_set_casing "$cased"
bb_set_bert_dir "$bert_model"
bb_set_launcher "$num_gpu"
init_checkpoint="${INIT_CHECKPOINT:-$BERT_DIR/bert_model.ckpt}"
bb_set_model_file_flags "$init_checkpoint"
results="$(bb_results_dir)"

out="$results/tf_bert_biobert_${task}_training_benchmark_${bert_model}_${CASING_DIR_PREFIX}_num_gpu_${num_gpu}_$(bb_datestamp)"
summary="$out/${task}_training_benchmark_bert_${bert_model}_gpu_${num_gpu}.log"
bb_mkdir "$out"
if [ "$TASK_NAME" = chemprot ]; then
    bb_prepare_chemprot
fi
if ! bb_is_dry_run; then
    {
        echo "Training performance benchmarking for BERT $bert_model from $init_checkpoint ($task, $num_gpu GPU(s))"
        printf 'precision\tseq_length\tbatch_size\tthroughput(sent/s)\tp50(ms)\tp90(ms)\tp95(ms)\tp99(ms)\tp100(ms)\n'
    } > "$summary"
fi

failed=()
for seq_length in ${BENCH_SEQ_LENGTHS:-128 512}; do
    for train_batch_size in ${BENCH_BATCH_SIZES:-8 32 64}; do
        for precision in ${BENCH_PRECISIONS:-fp16 fp32}; do
            bb_check_int seq_length "$seq_length"
            bb_check_int train_batch_size "$train_batch_size"
            if [ "$precision" = fp16 ]; then use_xla=true; else use_xla=false; fi
            res_dir="$out/bert_${bert_model}_gpu_${num_gpu}_sl_${seq_length}_prec_${precision}_bs_${train_batch_size}"
            log="$res_dir/${task}_training_benchmark.log"
            bb_mkdir "$res_dir"
            bb_info "== $task: precision $precision, seq_length $seq_length, batch $train_batch_size"
            if ! bb_run_logged "$log" "${LAUNCHER[@]}" "$PYTHON" "$ENTRY" \
                --do_prepare=true --do_train=true --do_eval=false --do_predict=false \
                "--task_name=$TASK_NAME" \
                "${MODEL_FILE_FLAGS[@]}" \
                "--init_checkpoint=$init_checkpoint" \
                "--num_train_epochs=$epochs" \
                "--data_dir=$DATASET_DIR" \
                "--output_dir=$res_dir" \
                "--dllog_path=$res_dir/bert_dllog.json" \
                "--train_batch_size=$train_batch_size" \
                "--max_seq_length=$seq_length" \
                "${HVD_FLAGS[@]}" "$(bb_precision_flag "$precision")" "$(bb_xla_flag "$use_xla")" "$CASE_FLAG"; then
                failed+=("$res_dir")
                bb_info "run failed, see $log"
            fi
            bb_is_dry_run && continue
            perf="$(bb_collect_perf train "$log" "$res_dir/bert_dllog.json")"
            echo "$perf"
            bb_summary_row "$summary" "$perf" "$precision" "$seq_length" "$train_batch_size"
        done
    done
done

bb_finish_benchmark "$summary" ${failed[@]+"${failed[@]}"}
