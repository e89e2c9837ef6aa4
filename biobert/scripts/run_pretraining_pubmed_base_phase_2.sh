#!/bin/bash
# BioBERT pre-training, phase 2: sequence length 512, 80 masked positions, LAMB, starting from
# the phase-1 checkpoint.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

usage() { bb_py usage pretrain 2; }

bb_maybe_usage "$@"
bb_pretrain_main 2 "$@"
