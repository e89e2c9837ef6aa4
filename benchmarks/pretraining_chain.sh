#!/usr/bin/env bash
# The whole pre-training chain on the real samples, with each step's wall time:
#   MEDLINE XML -> one article per line -> sentence shards (+ the 1 MB PubMed sample) -> TFRecords (phase 1: 128/20,
#   phase 2: 512/80) -> phase 1 (LAMB) -> phase 2 from phase 1's checkpoint, with a small BERT config.
# Feeds BENCHMARKS.md, "Pre-training chain on the samples" (each step's wall time, the eval figures).
# Usage: bash benchmarks/pretraining_chain.sh [work_dir] [phase1_steps] [phase2_steps]
# Environment: SHARED_DATA [../shared/data], AMP [--amp], XLA [--nouse_xla], PYTHON [python]
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="${1:-/tmp/pretraining_chain}"
P1_STEPS="${2:-300}"
P2_STEPS="${3:-50}"
SHARED_DATA="${SHARED_DATA:-$REPO/../shared/data}"
PYTHON="${PYTHON:-python}"
AMP="${AMP:---amp}"
XLA="${XLA:---nouse_xla}"
VOCAB="$SHARED_DATA/vocab/bert-base-uncased-vocab.txt"
rm -rf "$WORK"; mkdir -p "$WORK/xml"
cp "$SHARED_DATA/pubmed/medline16n0902.xml.gz" "$WORK/xml/"
PREP=("$PYTHON" "$REPO/data/bertPrep.py" --dataset pubmed_baseline --working_dir "$WORK")
SHARDS=(--n_training_shards 4 --n_test_shards 1 --fraction_test_set 0.1)
step() {  # step NAME COMMAND...
    local name="$1"; shift
    local start end
    start=$EPOCHREALTIME
    "$@" > "$WORK/$name.log" 2>&1 || { echo "step $name failed; see $WORK/$name.log" >&2; tail -5 "$WORK/$name.log" >&2; exit 1; }
    end=$EPOCHREALTIME
    awk -v n="$name" -v a="$start" -v b="$end" 'BEGIN { printf "%-22s %8.1f s\n", n, b - a }'
}
step download_local "${PREP[@]}" --action download --local_dir "$WORK/xml"
step format_xml "${PREP[@]}" --action text_formatting
FORMATTED="$WORK/formatted_one_article_per_line/pubmed_baseline_one_article_per_line.txt"
step shard "${PREP[@]}" --action sharding "${SHARDS[@]}" \
    --input_files "$FORMATTED,$SHARED_DATA/pubmed/PubMedAbstract_1MB.txt"
step tfrecords_phase1 "${PREP[@]}" --action create_tfrecord_files "${SHARDS[@]}" --max_seq_length 128 \
    --max_predictions_per_seq 20 --vocab_file "$VOCAB" --do_lower_case 1 --n_processes 2
step tfrecords_phase2 "${PREP[@]}" --action create_tfrecord_files "${SHARDS[@]}" --max_seq_length 512 \
    --max_predictions_per_seq 80 --vocab_file "$VOCAB" --do_lower_case 1 --n_processes 2
cat > "$WORK/small_bert_config.json" <<JSON
{"vocab_size": 30522, "hidden_size": 256, "num_hidden_layers": 4, "num_attention_heads": 4,
 "intermediate_size": 1024, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
 "attention_probs_dropout_prob": 0.1, "max_position_embeddings": 512, "type_vocab_size": 2,
 "initializer_range": 0.02}
JSON
tf1="$(ls -d "$WORK"/tfrecord/lower_case_1_seq_len_128_*)/pubmed_baseline"
tf2="$(ls -d "$WORK"/tfrecord/lower_case_1_seq_len_512_*)/pubmed_baseline"
COMMON=(--bert_config_file="$WORK/small_bert_config.json" --do_train --do_eval --optimizer_type=lamb
        --display_loss_steps=25 --max_eval_steps=50 "$AMP" "$XLA")
step phase1 "$PYTHON" "$REPO/run_pretraining.py" "${COMMON[@]}" --input_files_dir="$tf1/training" \
    --eval_files_dir="$tf1/test" --output_dir="$WORK/phase1" --dllog_path="$WORK/phase1/dllog.json" \
    --max_seq_length=128 --max_predictions_per_seq=20 --train_batch_size=32 --eval_batch_size=32 \
    --learning_rate=6e-3 --num_train_steps="$P1_STEPS" --num_warmup_steps=$((P1_STEPS / 10)) \
    --save_checkpoints_steps=100
step phase2 "$PYTHON" "$REPO/run_pretraining.py" "${COMMON[@]}" --input_files_dir="$tf2/training" \
    --eval_files_dir="$tf2/test" --output_dir="$WORK/phase2" --dllog_path="$WORK/phase2/dllog.json" \
    --init_checkpoint="$WORK/phase1" --max_seq_length=512 --max_predictions_per_seq=80 --train_batch_size=8 \
    --eval_batch_size=8 --learning_rate=4e-3 --num_train_steps="$P2_STEPS" --num_warmup_steps=$((P2_STEPS / 10)) \
    --save_checkpoints_steps=100
for phase in phase1 phase2; do
    echo "== $phase eval_results.txt"; cat "$WORK/$phase/eval_results.txt"
    grep -h "sentences/s" "$WORK/$phase.log" | tail -1
    grep -h "training took" "$WORK/$phase.log" || true
done
