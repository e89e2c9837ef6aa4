#!/usr/bin/env bash
# Prepare PubMed for BioBERT pre-training: download -> one article per line -> sentence shards ->
# TFRecords for phase 1 (seq 128, max_pred 20) and phase 2 (seq 512, max_pred 80).
#
# Environment (defaults in brackets):
#   BERT_PREP_WORKING_DIR  data root [<repo>/data; its download/, formatted_one_article_per_line/, sharded/
#                          and tfrecord/ folders are ignored by git]
#   PUBMED_LOCAL_DIR       folder of *.xml.gz to use instead of downloading from NCBI [unset]
#   PUBMED_BASE_URL        PubMed baseline listing [https://ftp.ncbi.nlm.nih.gov/pubmed/baseline/]
#   VOCAB_FILE             vocabulary for every casing below [the Google vocab of each casing under
#                          $BERT_PREP_WORKING_DIR/download/google_pretrained_weights/]
#   CASINGS                which vocabularies: "uncased", "cased" or both ["uncased cased"]
#   PHASES                 "1", "2" or both ["1 2"]
#   N_TRAINING_SHARDS, N_TEST_SHARDS  shards per split [one per 10000 articles of the split, 1 to 1472:
#                          the full baseline gives the original's 1472, a small sample 1]
#   FRACTION_TEST_SET      [0.1]
#   N_PROCESSES            parallel TFRecord workers [number of cores]
#   SKIP_DOWNLOAD=1        start from already downloaded XML
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export BERT_PREP_WORKING_DIR="${BERT_PREP_WORKING_DIR:-${SCRIPT_DIR}}"
PYTHON="${PYTHON:-python3}"
CASINGS="${CASINGS:-uncased cased}"
PHASES="${PHASES:-1 2}"
FRACTION_TEST_SET="${FRACTION_TEST_SET:-0.1}"
N_PROCESSES="${N_PROCESSES:-$(nproc 2>/dev/null || echo 4)}"
PREP=("${PYTHON}" "${SCRIPT_DIR}/bertPrep.py" --dataset pubmed_baseline)
SHARDS=(${N_TRAINING_SHARDS:+--n_training_shards "${N_TRAINING_SHARDS}"}
        ${N_TEST_SHARDS:+--n_test_shards "${N_TEST_SHARDS}"} --fraction_test_set "${FRACTION_TEST_SET}")

# Download (or copy from PUBMED_LOCAL_DIR)
if [[ "${SKIP_DOWNLOAD:-0}" != 1 ]]; then
  "${PREP[@]}" --action download ${PUBMED_LOCAL_DIR:+--local_dir "${PUBMED_LOCAL_DIR}"} \
      ${PUBMED_BASE_URL:+--base_url "${PUBMED_BASE_URL}"}
fi

# Properly format the text files, then shard them into sentence-per-line files
"${PREP[@]}" --action text_formatting
"${PREP[@]}" --action sharding "${SHARDS[@]}"

vocab_for() {  # $1: uncased|cased
  if [[ -n "${VOCAB_FILE:-}" ]]; then echo "${VOCAB_FILE}"; return; fi
  local v="${BERT_PREP_WORKING_DIR}/download/google_pretrained_weights/$1_L-12_H-768_A-12/vocab.txt"
  if [[ ! -f "${v}" ]]; then
    "${PYTHON}" "${SCRIPT_DIR}/bertPrep.py" --action download --dataset google_pretrained_weights >&2
  fi
  echo "${v}"
}

for casing in ${CASINGS}; do
  lower=1; [[ "${casing}" == cased ]] && lower=0
  vocab="$(vocab_for "${casing}")"
  for phase in ${PHASES}; do
    if [[ "${phase}" == 1 ]]; then seq=128; pred=20; else seq=512; pred=80; fi
    "${PREP[@]}" --action create_tfrecord_files "${SHARDS[@]}" --max_seq_length "${seq}" \
        --max_predictions_per_seq "${pred}" --vocab_file "${vocab}" --do_lower_case "${lower}" \
        --n_processes "${N_PROCESSES}"
  done
done
echo "TFRecords under ${BERT_PREP_WORKING_DIR}/tfrecord/"
