#!/bin/bash
# Fine-tune BioBERT for BC5CDR-disease named-entity recognition, then print the conlleval summary.
# Positional arguments and defaults: bash biobert/scripts/ner_bc5cdr-disease.sh -h
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

usage() { bb_py usage finetune ner_bc5cdr-disease; }

bb_maybe_usage "$@"
bb_finetune_main ner_bc5cdr-disease "$@"
