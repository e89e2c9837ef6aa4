#!/bin/bash
# BioBERT pre-training, phase 1: sequence length 128, 20 masked positions, LAMB, starting from
# the Google BERT-base checkpoint.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

usage() { bb_py usage pretrain 1; }

bb_maybe_usage "$@"
bb_pretrain_main 1 "$@"
