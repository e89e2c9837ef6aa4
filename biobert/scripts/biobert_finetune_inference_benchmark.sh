#!/bin/bash
# Inference benchmark: eval/predict runs over sequence lengths, batch sizes and precisions on
# one process; collects throughput and latency of every run into one summary file.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

usage() { bb_py usage benchmark inference; }

bb_maybe_usage "$@"
bb_benchmark_main inference "$@"
