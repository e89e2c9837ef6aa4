#!/usr/bin/env bash
# Download and prepare the PubMed pre-training data (runs data/create_biobert_datasets_from_start.sh).
#
# Runs directly by default. With USE_DOCKER=1 it runs inside the `bert` image (IMAGE to override),
# mounting the repository at /workspace/bert as the original did. All environment variables of
# create_biobert_datasets_from_start.sh pass through (BERT_PREP_WORKING_DIR, PUBMED_LOCAL_DIR,
# VOCAB_FILE, CASINGS, PHASES, N_TRAINING_SHARDS, N_TEST_SHARDS, N_PROCESSES, ...).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

if [[ "${USE_DOCKER:-0}" == 1 ]]; then
  envs=()
  for v in BERT_PREP_WORKING_DIR PUBMED_LOCAL_DIR PUBMED_BASE_URL VOCAB_FILE CASINGS PHASES \
           N_TRAINING_SHARDS N_TEST_SHARDS FRACTION_TEST_SET N_PROCESSES SKIP_DOWNLOAD; do
    [[ -n "${!v:-}" ]] && envs+=(-e "${v}=${!v}")
  done
  exec docker run --gpus all -v "${REPO}:/workspace/bert" -w /workspace/bert \
      --rm --shm-size=1g --ulimit memlock=-1 --ulimit stack=67108864 --ipc=host -t -i \
      "${envs[@]}" "${IMAGE:-bert}" bash -c "bash data/create_biobert_datasets_from_start.sh"
fi

exec bash "${REPO}/data/create_biobert_datasets_from_start.sh"
