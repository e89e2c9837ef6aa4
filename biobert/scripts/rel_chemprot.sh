#!/bin/bash
# Fine-tune BioBERT for ChemProt relation extraction, then score the test set with re_eval.py.
# Positional arguments and defaults: bash biobert/scripts/rel_chemprot.sh -h
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

usage() { bb_py usage finetune rel_chemprot; }

bb_maybe_usage "$@"
bb_finetune_main rel_chemprot "$@"
