# shellcheck shell=bash
# Shared helpers for the BioBERT one-click scripts. Source it, do not run it:
#
#     source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
#
# Environment variables understood by every script (all optional):
#   DATA_ROOT      data root of the original layout           [<repo>/data]
#   BERT_DIR       Google BERT folder with vocab.txt and bert_config.json
#                  [$DATA_ROOT/download/google_pretrained_weights/<cased|uncased>_L-12_H-768_A-12]
#                  (L-24_H-1024_A-16 for bert_model=large)
#   VOCAB_FILE     vocabulary file                             [$BERT_DIR/vocab.txt]
#   BERT_CONFIG    model config json                           [$BERT_DIR/bert_config.json]
#   BC5CDR_DATA    NER data folder           [$DATA_ROOT/biobert/BC5CDR/<chem|disease>]
#   CHEMPROT_DATA  ChemProt train/dev/test.tsv folder  [$DATA_ROOT/biobert/chemprot-data_treeLSTM]
#   CHEMPROT_CORPUS original ChemProt corpus folder    [$DATA_ROOT/biobert/ChemProt_Corpus]
#   RESULTS_DIR    results root                 [./results]
#   OUTPUT_DIR     exact output folder of a fine-tuning run (overrides the generated name)
#   PYTHON         interpreter for the entry points        [python]
#   PYTHON_HELPER  interpreter for biobert/launch.py (defaults, -h texts, benchmark figures) [python3]
#   DRY_RUN=1      print the commands (after a line "DRY_RUN:") instead of running them
#
# The per-task and per-phase defaults are configurations.yml's, read through biobert/launch.py (bb_py), which
# also writes the -h texts from them. A Hugging Face folder (one holding config.json) given as init checkpoint
# supplies its own config.json and vocab.txt: then --vocab_file / --bert_config_file are passed only when
# VOCAB_FILE / BERT_CONFIG are set explicitly.

# Repository root: two levels above this file.
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DATA_ROOT="${DATA_ROOT:-$REPO_ROOT/data}"
PYTHON="${PYTHON:-python}"
BB_DRY_HEADER_DONE=0

# bb_py COMMAND ARGS...: python -m biobert.launch COMMAND ARGS... (no TensorFlow; see its docstring).
bb_py() {
    PYTHONPATH="$REPO_ROOT${PYTHONPATH:+:$PYTHONPATH}" "${PYTHON_HELPER:-python3}" -m biobert.launch "$@"
}

# bb_is_dry_run: true when DRY_RUN asks for printing instead of running.
bb_is_dry_run() {
    case "${DRY_RUN:-0}" in 1 | true | TRUE | yes) return 0 ;; *) return 1 ;; esac
}

# bb_info MESSAGE...: progress message; goes to stderr under DRY_RUN so stdout holds commands only.
bb_info() {
    if bb_is_dry_run; then echo "$*" >&2; else echo "$*"; fi
}

# bb_die MESSAGE...: print "error: MESSAGE" to stderr and exit 1.
bb_die() {
    echo "error: $*" >&2
    exit 1
}

# bb_maybe_usage ARGS...: when the first argument is -h/--help, call the script's usage() and exit 0.
bb_maybe_usage() {
    case "${1:-}" in -h | --help) usage; exit 0 ;; esac
}

# bb_max_args N ARGS...: exit with an error when more than N positional arguments were given.
bb_max_args() {
    local max="$1"; shift
    if [ "$#" -gt "$max" ]; then
        usage >&2
        bb_die "expected at most $max arguments, got $#"
    fi
}

# bb_check_int NAME VALUE: VALUE must be a positive integer.
bb_check_int() {
    [[ "$2" =~ ^[0-9]+$ ]] && [ "$2" -gt 0 ] || bb_die "$1 must be a positive integer, got '$2'"
}

# bb_check_number NAME VALUE: VALUE must be a non-negative decimal number (3, 2.0, 3.125e-6).
bb_check_number() {
    [[ "$2" =~ ^[0-9]*\.?[0-9]+([eE][-+]?[0-9]+)?$ ]] || bb_die "$1 must be a number, got '$2'"
}

# bb_check_bool NAME VALUE: VALUE must be true or false.
bb_check_bool() {
    case "$2" in true | false) ;; *) bb_die "$1 must be true or false, got '$2'" ;; esac
}

# bb_gpu_count: the number of GPUs `nvidia-smi -L` lists (0 without nvidia-smi).
bb_gpu_count() {
    nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true
}

# bb_default_num_gpu: the GPUs present, 1 when there are none.
bb_default_num_gpu() {
    local n; n="$(bb_gpu_count)"
    if [ "$n" -gt 0 ]; then echo "$n"; else echo 1; fi
}

# bb_default_use_xla: true with GPUs; false on CPU-only machines, where XLA's CPU matmuls are slower than
# TensorFlow's oneDNN kernels (BENCHMARKS.md).
bb_default_use_xla() {
    if [ "$(bb_gpu_count)" -gt 0 ]; then echo true; else echo false; fi
}

# bb_results_dir: print RESULTS_DIR, else $PWD/results (ignored by git when $PWD is the repository). The
# original wrote under /results (its container's mount); set RESULTS_DIR=/results for that.
bb_results_dir() {
    if [ -n "${RESULTS_DIR:-}" ]; then echo "$RESULTS_DIR"; else echo "$PWD/results"; fi
}

# bb_datestamp: the original scripts' datestamp, yymmddHHMMSS.
bb_datestamp() {
    date +'%y%m%d%H%M%S'
}

# bb_set_casing CASED(true|false): set CASING_DIR_PREFIX, DO_LOWER_CASE (0|1) and CASE_FLAG.
bb_set_casing() {
    bb_check_bool cased "$1"
    if [ "$1" = "true" ]; then
        CASING_DIR_PREFIX="cased"; DO_LOWER_CASE=0; CASE_FLAG="--do_lower_case=false"
    else
        CASING_DIR_PREFIX="uncased"; DO_LOWER_CASE=1; CASE_FLAG="--do_lower_case=true"
    fi
}

# bb_set_bert_dir BERT_MODEL(base|large): set BERT_DIR (unless given) from CASING_DIR_PREFIX and the model size.
bb_set_bert_dir() {
    local suffix
    case "$1" in
        base) suffix="L-12_H-768_A-12" ;;
        large) suffix="L-24_H-1024_A-16" ;;
        *) bb_die "bert_model must be base or large, got '$1'" ;;
    esac
    BERT_DIR="${BERT_DIR:-$DATA_ROOT/download/google_pretrained_weights/${CASING_DIR_PREFIX}_${suffix}}"
}

# bb_precision_flag PRECISION: print --amp for fp16, --noamp for anything else.
bb_precision_flag() {
    if [ "$1" = "fp16" ]; then echo "--amp"; else echo "--noamp"; fi
}

# bb_xla_flag USE_XLA: print --use_xla for true, --nouse_xla for anything else.
bb_xla_flag() {
    if [ "$1" = "true" ]; then echo "--use_xla"; else echo "--nouse_xla"; fi
}

# bb_is_hf_folder PATH: true when PATH is a Hugging Face model folder (holds config.json).
bb_is_hf_folder() {
    [ -d "$1" ] && [ -f "$1/config.json" ]
}

# bb_set_model_file_flags INIT_CHECKPOINT [with_vocab=1]: fill the array MODEL_FILE_FLAGS with
# --vocab_file / --bert_config_file. VOCAB_FILE / BERT_CONFIG win when set. Otherwise a Hugging Face folder
# brings its own config.json and vocab.txt (nothing passed), a checkpoint with bert_config.json / vocab.txt
# beside it (a Google or BioBERT release, a phase-1 result of this project) uses those, and anything else
# takes them from $BERT_DIR.
bb_set_model_file_flags() {
    local init="$1" beside="$1" flag var file value
    [ -d "$init" ] || beside="$(dirname "$init")"
    MODEL_FILE_FLAGS=()
    for flag in vocab_file:VOCAB_FILE:vocab.txt bert_config_file:BERT_CONFIG:bert_config.json; do
        IFS=: read -r flag var file <<< "$flag"
        if [ "$flag" = vocab_file ] && [ "${2:-1}" != 1 ]; then continue; fi
        value="${!var:-}"
        if [ -z "$value" ]; then
            if bb_is_hf_folder "$init"; then continue; fi
            if [ -f "$beside/$file" ]; then value="$beside/$file"; else value="$BERT_DIR/$file"; fi
        fi
        MODEL_FILE_FLAGS+=("--$flag=$value")
    done
}

# bb_set_launcher NUM_GPU: fill the arrays LAUNCHER (mpirun prefix, empty for one GPU) and
# HVD_FLAGS (--horovod when more than one process is launched).
bb_set_launcher() {
    local n="$1"
    bb_check_int num_gpu "$n"
    LAUNCHER=()
    HVD_FLAGS=()
    if [ "$n" -gt 1 ]; then
        LAUNCHER=(mpirun -np "$n" --allow-run-as-root -bind-to none -map-by slot
                  -x NCCL_DEBUG=INFO -x LD_LIBRARY_PATH -x PATH)
        HVD_FLAGS=(--horovod)
        if ! bb_is_dry_run && ! command -v mpirun >/dev/null 2>&1; then
            bb_die "num_gpu=$n needs mpirun (apt-get install openmpi-bin), or pass num_gpu=1"
        fi
    fi
}

# bb_print_command ARGS...: print one command line, shell-quoted, after the DRY_RUN: header.
bb_print_command() {
    if [ "$BB_DRY_HEADER_DONE" = 0 ]; then
        echo "DRY_RUN:"
        BB_DRY_HEADER_DONE=1
    fi
    local out="" arg
    for arg in "$@"; do
        out+="$(printf '%q' "$arg") "
    done
    echo "${out% }"
}

# bb_run ARGS...: run the command, or print it under DRY_RUN.
bb_run() {
    if bb_is_dry_run; then bb_print_command "$@"; else "$@"; fi
}

# bb_run_logged LOGFILE ARGS...: run the command with stdout+stderr copied into LOGFILE
# (exit status of the command kept), or print the command under DRY_RUN.
bb_run_logged() {
    local log="$1"; shift
    if bb_is_dry_run; then bb_print_command "$@"; else "$@" 2>&1 | tee "$log"; fi
}

# bb_mkdir DIR...: create folders (skipped under DRY_RUN).
bb_mkdir() {
    if ! bb_is_dry_run; then mkdir -p "$@"; fi
}

# bb_task_settings TASK: the facts and defaults of ner_bc5cdr-chem | ner_bc5cdr-disease | rel_chemprot
# (configurations.yml): TASK_TAG, ENTRY (python file), TASK_NAME, DATASET_DIR ($BC5CDR_DATA or $CHEMPROT_DATA
# when set) and the positional arguments' defaults DEF_BS, DEF_LR, DEF_CASED, DEF_PRECISION, DEF_SEQ, DEF_MODEL,
# DEF_EVAL_BS, DEF_EPOCHS; INFER_BS and INFER_SEQ, those of run_biobert_finetuning_inference.sh.
bb_task_settings() {
    local settings
    settings="$(bb_py settings finetune "$1")" || exit 1
    eval "$settings"
    ENTRY="$REPO_ROOT/$ENTRY_NAME"
    DATASET_DIR="${!DATA_VAR:-$DATA_ROOT/$DATA_SUBDIR}"
}

# bb_prepare_chemprot: turn the original ChemProt corpus into train/dev/test.tsv of
# DATASET_DIR when its train.tsv is missing.
bb_prepare_chemprot() {
    if [ ! -f "$DATASET_DIR/train.tsv" ]; then
        local corpus="${CHEMPROT_CORPUS:-$DATA_ROOT/biobert/ChemProt_Corpus}"
        bb_info "No $DATASET_DIR/train.tsv: formatting the ChemProt corpus from $corpus"
        bb_run "$PYTHON" "$REPO_ROOT/data/ChemProtTextFormatting.py" \
            "--input_folder=$corpus" "--output_folder=$DATASET_DIR"
    fi
}

# bb_evaluate OUTPUT_DIR: the task's test-set score: for ChemProt, biobert/re_eval.py on
# OUTPUT_DIR/test_results.tsv (printed and saved to OUTPUT_DIR/test_results.txt); for NER, the conlleval
# summary run_ner.py wrote (not under DRY_RUN).
bb_evaluate() {
    if [ "$TASK_NAME" = chemprot ]; then
        bb_run_logged "$1/test_results.txt" "$PYTHON" "$REPO_ROOT/biobert/re_eval.py" --task=chemprot \
            "--output_path=$1/test_results.tsv" "--answer_path=$DATASET_DIR/test.tsv"
        return
    fi
    bb_is_dry_run && return 0
    local f="$1/test_results_conlleval.txt"
    [ -f "$f" ] || bb_die "missing $f: run_ner.py wrote no conlleval summary"
    echo "conlleval summary ($f):"
    cat "$f"
}

# bb_latest_checkpoint and bb_tfrecord_dir stay in bash: run_biobert.sub runs them on the Slurm host, outside
# the container, where only bash can be counted on.

# bb_latest_checkpoint DIR: print the newest checkpoint prefix in DIR (from its `checkpoint`
# index file, else the highest-numbered *-N.index); return 1 when there is none.
bb_latest_checkpoint() {
    local dir="$1" name best="" best_n=-1 f n
    if [ -f "$dir/checkpoint" ]; then
        name="$(sed -n 's/^model_checkpoint_path: *"\(.*\)"$/\1/p' "$dir/checkpoint" | head -n 1)"
        if [ -n "$name" ]; then
            case "$name" in /*) echo "$name" ;; *) echo "$dir/$name" ;; esac
            return 0
        fi
    fi
    for f in "$dir"/*.index; do
        [ -e "$f" ] || continue
        n="${f%.index}"; n="${n##*-}"
        if [[ "$n" =~ ^[0-9]+$ ]] && [ "$n" -gt "$best_n" ]; then
            best_n="$n"; best="${f%.index}"
        fi
    done
    [ -n "$best" ] || return 1
    echo "$best"
}

# bb_tfrecord_dir LOWER(0|1) SEQ MAX_PRED: print the pubmed_baseline folder of the TFRecords
# data/create_biobert_datasets_from_start.sh made under $DATA_ROOT/tfrecord for these settings. The folder
# name holds the number of training shards: NUM_SHARDS (or N_TRAINING_SHARDS) when set, else the one
# such folder there is (the data script derives the count from the corpus size), else the original's 1472.
bb_tfrecord_dir() {
    local stem="$DATA_ROOT/tfrecord/lower_case_$1_seq_len_$2_max_pred_$3_masked_lm_prob_0.15_random_seed_12345_dupe_factor_5_shard_"
    local shards="${NUM_SHARDS:-${N_TRAINING_SHARDS:-}}" found=() d
    if [ -z "$shards" ]; then
        for d in "$stem"*_test_split_10; do
            [ -d "$d" ] && found+=("$d")
        done
        if [ "${#found[@]}" -eq 1 ]; then
            echo "${found[0]}/pubmed_baseline"
            return 0
        elif [ "${#found[@]}" -gt 1 ]; then
            bb_die "several TFRecord folders match ${stem}*: set NUM_SHARDS to the number of training shards"
        fi
        shards=1472
    fi
    echo "${stem}${shards}_test_split_10/pubmed_baseline"
}

# bb_collect_perf MODE(train|infer) FILE...: print a run's "Throughput Average (sentences/sec) = X" and
# "Latency Confidence Level P (ms) = Y" lines, read from its log and dllogger files.
bb_collect_perf() {
    bb_py perf "$@"
}

# bb_finetune_main TASK ARGS...: the body of ner_bc5cdr-chem.sh, ner_bc5cdr-disease.sh and
# rel_chemprot.sh. ARGS are the original positional arguments:
#   1 init_checkpoint 2 train_batch_size 3 learning_rate 4 cased 5 precision 6 use_xla
#   7 num_gpu 8 seq_length 9 bert_model 10 eval_batch_size 11 epochs
# Trains (--do_train/--do_eval/--do_predict) into
# <results>/tf_bert_biobert_<task>_<model>_<precision>_gbs<batch*num_gpu>_<datestamp>, then prints
# the conlleval summary (NER) or runs biobert/re_eval.py (ChemProt).
bb_finetune_main() {
    local task="$1"; shift
    bb_max_args 11 "$@"
    bb_task_settings "$task"
    local results; results="$(bb_results_dir)"
    local init_checkpoint="${1:-}"
    local train_batch_size="${2:-$DEF_BS}"
    local learning_rate="${3:-$DEF_LR}"
    local cased="${4:-$DEF_CASED}"
    local precision="${5:-$DEF_PRECISION}"
    local use_xla="${6:-$(bb_default_use_xla)}"
    local num_gpu="${7:-$(bb_default_num_gpu)}"
    local seq_length="${8:-$DEF_SEQ}"
    local bert_model="${9:-$DEF_MODEL}"
    local eval_batch_size="${10:-$DEF_EVAL_BS}"
    local epochs="${11:-$DEF_EPOCHS}"

    bb_check_int train_batch_size "$train_batch_size"
    bb_check_number learning_rate "$learning_rate"
    bb_check_bool use_xla "$use_xla"
    bb_check_int seq_length "$seq_length"
    bb_check_int eval_batch_size "$eval_batch_size"
    bb_check_number epochs "$epochs"
    bb_set_casing "$cased"
    bb_set_bert_dir "$bert_model"
    init_checkpoint="${init_checkpoint:-$results/biobert_tf_${CASING_DIR_PREFIX}_${bert_model}/model.ckpt}"
    bb_set_launcher "$num_gpu"
    bb_set_model_file_flags "$init_checkpoint"

    local gbs=$((train_batch_size * num_gpu))
    local out="${OUTPUT_DIR:-$results/tf_bert_biobert_${TASK_TAG}_${bert_model}_${precision}_gbs${gbs}_$(bb_datestamp)}"
    bb_mkdir "$out"
    bb_info "Container nvidia build = ${NVIDIA_BUILD_ID:-none}; output: $out"
    bb_info "precision $precision ($(bb_precision_flag "$precision")), XLA $use_xla, $num_gpu process(es)"

    if [ "$TASK_NAME" = chemprot ]; then
        bb_prepare_chemprot
    fi
    bb_run "${LAUNCHER[@]}" "$PYTHON" "$ENTRY" \
        --do_prepare=true --do_train=true --do_eval=true --do_predict=true \
        "--task_name=$TASK_NAME" \
        "${MODEL_FILE_FLAGS[@]}" \
        "--init_checkpoint=$init_checkpoint" \
        "--num_train_epochs=$epochs" \
        "--data_dir=$DATASET_DIR" \
        "--output_dir=$out" \
        "--dllog_path=$out/bert_dllog.json" \
        "--learning_rate=$learning_rate" \
        "--train_batch_size=$train_batch_size" \
        "--eval_batch_size=$eval_batch_size" \
        "--predict_batch_size=$eval_batch_size" \
        "--max_seq_length=$seq_length" \
        "${HVD_FLAGS[@]}" "$(bb_precision_flag "$precision")" "$(bb_xla_flag "$use_xla")" "$CASE_FLAG"
    bb_evaluate "$out"
}

# bb_pretrain_main PHASE(1|2) ARGS...: the body of run_pretraining_pubmed_base_phase_{1,2}.sh.
# Phase 1 ARGS: train_batch_size learning_rate cased precision use_xla num_gpu warmup_steps
#   train_steps num_accumulation_steps save_checkpoint_steps eval_batch_size
# Phase 2 ARGS: init_checkpoint, then the same list.
# Checkpoints go to <results>/biobert_phase_<PHASE> (CHECKPOINTS_DIR overrides), the log to
# <results>/tf_bert_bio_1n_phase<PHASE>_cased_<cased>_<precision>_gbs<N>.<datestamp>.log with
# N = train_batch_size * num_gpu * num_accumulation_steps.
bb_pretrain_main() {
    local phase="$1"; shift
    local init_checkpoint="" results settings
    results="$(bb_results_dir)"
    settings="$(bb_py settings pretrain "$phase")" || exit 1
    eval "$settings"
    if [ "$phase" = 1 ]; then
        bb_max_args 11 "$@"
        set -- "" "$@"
    else
        bb_max_args 12 "$@"
        init_checkpoint="${1:-}"
    fi
    local train_batch_size="${2:-$PT_BS}"
    local learning_rate="${3:-$PT_LR}"
    local cased="${4:-$PT_CASED}"
    local precision="${5:-$PT_PRECISION}"
    local use_xla="${6:-$(bb_default_use_xla)}"
    local num_gpu="${7:-$(bb_default_num_gpu)}"
    local warmup_steps="${8:-$PT_WARM}"
    local train_steps="${9:-$PT_STEPS}"
    local num_accumulation_steps="${10:-$PT_ACC}"
    local save_checkpoint_steps="${11:-$PT_SAVE}"
    local eval_batch_size="${12:-$PT_EVAL}"

    bb_check_int train_batch_size "$train_batch_size"
    bb_check_number learning_rate "$learning_rate"
    bb_check_bool use_xla "$use_xla"
    [[ "$warmup_steps" =~ ^[0-9]+$ ]] || bb_die "warmup_steps must be an integer, got '$warmup_steps'"
    bb_check_int train_steps "$train_steps"
    bb_check_int num_accumulation_steps "$num_accumulation_steps"
    bb_check_int save_checkpoint_steps "$save_checkpoint_steps"
    bb_check_int eval_batch_size "$eval_batch_size"
    bb_set_casing "$cased"
    bb_set_bert_dir base
    bb_set_launcher "$num_gpu"

    if [ "$phase" = 1 ]; then
        init_checkpoint="${INIT_CHECKPOINT:-$BERT_DIR/bert_model.ckpt}"
    else
        local phase1_dir="$results/biobert_phase_1"
        if [ -z "$init_checkpoint" ]; then
            init_checkpoint="$(bb_latest_checkpoint "$phase1_dir")" \
                || bb_die "no phase-1 checkpoint in $phase1_dir; pass it as the first argument"
        elif [ -d "$init_checkpoint" ] && ! bb_is_hf_folder "$init_checkpoint"; then
            init_checkpoint="$(bb_latest_checkpoint "$init_checkpoint" || echo "$init_checkpoint")"
        fi
    fi
    bb_set_model_file_flags "$init_checkpoint" 0

    local tfrec
    tfrec="$(bb_tfrecord_dir "$DO_LOWER_CASE" "$PT_SEQ" "$PT_MAX_PRED")"
    local input_dir="${INPUT_FILES_DIR:-$tfrec/training}"
    local eval_dir="${EVAL_FILES_DIR:-$tfrec/test}"
    local ckpt_dir="${CHECKPOINTS_DIR:-$results/biobert_phase_${phase}}"
    local gbs=$((train_batch_size * num_gpu * num_accumulation_steps))
    local logfile="$results/tf_bert_bio_1n_phase${phase}_cased_${cased}_${precision}_gbs${gbs}.$(bb_datestamp).log"
    bb_mkdir "$ckpt_dir"
    bb_info "Container nvidia build = ${NVIDIA_BUILD_ID:-none}"
    bb_info "Phase $phase pre-training from $init_checkpoint into $ckpt_dir; logs written to $logfile"

    bb_run_logged "$logfile" "${LAUNCHER[@]}" "$PYTHON" "$REPO_ROOT/run_pretraining.py" \
        "--input_files_dir=$input_dir" \
        "--eval_files_dir=$eval_dir" \
        "--output_dir=$ckpt_dir" \
        "${MODEL_FILE_FLAGS[@]}" \
        "--dllog_path=$ckpt_dir/bert_dllog.json" \
        --do_train=true --do_eval=true \
        --optimizer_type=lamb "$CASE_FLAG" \
        "--train_batch_size=$train_batch_size" \
        "--eval_batch_size=$eval_batch_size" \
        "--max_seq_length=$PT_SEQ" \
        "--max_predictions_per_seq=$PT_MAX_PRED" \
        "--num_train_steps=$train_steps" \
        "--num_warmup_steps=$warmup_steps" \
        "--save_checkpoints_steps=$save_checkpoint_steps" \
        "--num_accumulation_steps=$num_accumulation_steps" \
        --allreduce_post_accumulation=true \
        "--learning_rate=$learning_rate" \
        --report_loss \
        ${MAX_EVAL_STEPS:+"--max_eval_steps=$MAX_EVAL_STEPS"} \
        "${HVD_FLAGS[@]}" "$(bb_precision_flag "$precision")" "$(bb_xla_flag "$use_xla")" \
        "--init_checkpoint=$init_checkpoint"
}

# bb_benchmark_main MODE(train|inference) ARGS...: the body of biobert_finetune_<MODE>_benchmark.sh: one short
# run per seq_length x batch size x precision (train: fine-tuning for BENCH_EPOCHS on num_gpu processes;
# inference: --do_eval/--do_predict on one), each run's throughput and latency collected into one summary.
# train ARGS: task num_gpu bert_model cased; inference ARGS: task bert_model cased.
bb_benchmark_main() {
    local mode="$1"; shift
    local task num_gpu=1 bert_model cased epochs="" kind=inference gpu_tag="" header_tag=""
    if [ "$mode" = train ]; then
        bb_max_args 4 "$@"
        num_gpu="${2:-$(bb_default_num_gpu)}"
        set -- "${1:-}" "${@:3}"        # task bert_model cased, as the inference benchmark takes them
    else
        bb_max_args 3 "$@"
    fi
    task="${1:-ner_bc5cdr-chem}"
    bert_model="${2:-base}"
    cased="${3:-false}"
    bb_task_settings "$task"
    if [ "$mode" = train ]; then
        epochs="${BENCH_EPOCHS:-2.0}"
        kind=training
        bb_check_number BENCH_EPOCHS "$epochs"
    fi
    bb_set_casing "$cased"
    bb_set_bert_dir "$bert_model"
    bb_set_launcher "$num_gpu"
    local init_checkpoint="${INIT_CHECKPOINT:-$BERT_DIR/bert_model.ckpt}"
    bb_set_model_file_flags "$init_checkpoint"
    local results; results="$(bb_results_dir)"

    local run_flags=(--do_prepare=true --do_train=false --do_eval=true --do_predict=true) size_name=batch_size
    if [ "$mode" = train ]; then
        run_flags=(--do_prepare=true --do_train=true --do_eval=false --do_predict=false)
        size_name=train_batch_size
        gpu_tag="_gpu_${num_gpu}"
        header_tag=", $num_gpu GPU(s)"
    fi
    local out="$results/tf_bert_biobert_${task}_${kind}_benchmark_${bert_model}_${CASING_DIR_PREFIX}${gpu_tag:+_num$gpu_tag}_$(bb_datestamp)"
    local summary="$out/${task}_${kind}_benchmark_bert_${bert_model}${gpu_tag}.log"
    bb_mkdir "$out"
    if [ "$TASK_NAME" = chemprot ]; then
        bb_prepare_chemprot
    fi
    if ! bb_is_dry_run; then
        {
            echo "${kind^} performance benchmarking for BERT $bert_model from $init_checkpoint ($task$header_tag)"
            printf 'precision\tseq_length\tbatch_size\tthroughput(sent/s)\tp50(ms)\tp90(ms)\tp95(ms)\tp99(ms)\tp100(ms)\n'
        } > "$summary"
    fi

    local failed=() seq_length size precision use_xla res_dir log size_flags epoch_flags=()
    if [ "$mode" = train ]; then epoch_flags=("--num_train_epochs=$epochs"); fi
    for seq_length in ${BENCH_SEQ_LENGTHS:-128 512}; do
        for size in ${BENCH_BATCH_SIZES:-8 32 64}; do
            for precision in ${BENCH_PRECISIONS:-fp16 fp32}; do
                bb_check_int seq_length "$seq_length"
                bb_check_int "$size_name" "$size"
                if [ "$precision" = fp16 ]; then use_xla=true; else use_xla=false; fi
                res_dir="$out/bert_${bert_model}${gpu_tag}_sl_${seq_length}_prec_${precision}_bs_${size}"
                log="$res_dir/${task}_${kind}_benchmark.log"
                if [ "$mode" = train ]; then
                    size_flags=("--train_batch_size=$size")
                else
                    size_flags=("--eval_batch_size=$size" "--predict_batch_size=$size")
                fi
                bb_mkdir "$res_dir"
                bb_info "== $task: precision $precision, seq_length $seq_length, batch $size"
                if ! bb_run_logged "$log" "${LAUNCHER[@]}" "$PYTHON" "$ENTRY" "${run_flags[@]}" \
                    "--task_name=$TASK_NAME" \
                    "${MODEL_FILE_FLAGS[@]}" \
                    "--init_checkpoint=$init_checkpoint" \
                    "${epoch_flags[@]}" \
                    "--data_dir=$DATASET_DIR" \
                    "--output_dir=$res_dir" \
                    "--dllog_path=$res_dir/bert_dllog.json" \
                    "${size_flags[@]}" \
                    "--max_seq_length=$seq_length" \
                    "${HVD_FLAGS[@]}" "$(bb_precision_flag "$precision")" "$(bb_xla_flag "$use_xla")" "$CASE_FLAG"; then
                    failed+=("$res_dir")
                    bb_info "run failed, see $log"
                fi
                bb_is_dry_run && continue
                bb_py perf "${mode/inference/infer}" "$log" "$res_dir/bert_dllog.json" \
                    --row "$summary" "$precision" "$seq_length" "$size"
            done
        done
    done

    if ! bb_is_dry_run; then
        echo "Summary ($summary):"
        cat "$summary"
    fi
    if [ "${#failed[@]}" -gt 0 ]; then
        bb_die "${#failed[@]} run(s) failed: ${failed[*]}"
    fi
}
